package ecsemu_test

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/replicatord/replicatord/internal/ecsemu"
)

// rawSend sends signed params and returns the whole response.
func (c *client) rawSend(p map[string]string) (*http.Response, string) {
	c.t.Helper()
	q := url.Values{}
	for k, v := range p {
		q.Set(k, v)
	}
	req, _ := http.NewRequest(c.method, c.base+"/?"+q.Encode(), nil)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, b.String()
}

func TestFormatXMLAnswersAndErrors(t *testing.T) {
	r := newRig(t, nil)
	resp, body := r.c.rawSend(r.c.signed("DescribeImages", "RegionId", "cn-hangzhou", "ImageId", demoUbuntu, "Format", "XML"))
	var ok struct {
		XMLName    xml.Name
		TotalCount int
		Images     struct {
			Image []struct {
				ImageId string
				Tags    struct {
					Tag []struct{ TagKey, TagValue string }
				}
			}
		}
	}
	if err := xml.Unmarshal([]byte(body), &ok); err != nil || resp.StatusCode != 200 || ok.XMLName.Local != "DescribeImagesResponse" ||
		ok.TotalCount != 1 || ok.Images.Image[0].ImageId != demoUbuntu || len(ok.Images.Image[0].Tags.Tag) != 3 {
		t.Fatalf("XML answer %d %v %+v:\n%s", resp.StatusCode, err, ok, body)
	}
	resp, body = r.c.rawSend(r.c.signed("DescribeImages", "RegionId", "cn-atlantis", "Format", "XML"))
	var e struct {
		XMLName                                     xml.Name
		RequestId, HostId, Code, Message, Recommend string
	}
	if err := xml.Unmarshal([]byte(body), &e); err != nil || resp.StatusCode != 404 || e.XMLName.Local != "Error" || e.Code != "InvalidRegionId.NotFound" || e.RequestId == "" {
		t.Fatalf("XML error %d %v %+v:\n%s", resp.StatusCode, err, e, body)
	}
}

func TestHostIdIsTheEndpointCalled(t *testing.T) {
	r := newRig(t, nil)
	_, m := r.c.call("DescribeImages", "RegionId", "cn-atlantis")
	host := strings.TrimPrefix(r.srv.URL, "http://")
	if m["HostId"] != host {
		t.Fatalf("HostId %v, want the Host called (%s)", m["HostId"], host)
	}
	if !strings.Contains(m["Recommend"].(string), "product=Ecs") {
		t.Fatalf("Recommend %v", m["Recommend"])
	}
}

func TestThrottlingSendsRetryAfter(t *testing.T) {
	r := newRig(t, func(c *ecsemu.Config) { c.ThrottleRate = 60 }) // one a second, burst 60
	var resp *http.Response
	for i := 0; i < 61; i++ {
		resp, _ = r.c.rawSend(r.c.signed("DescribeRegions"))
	}
	if resp.StatusCode != 400 {
		t.Fatalf("61st call in a burst of 60: %d", resp.StatusCode)
	}
	ms, err := strconv.Atoi(resp.Header.Get("x-acs-retry-after"))
	if err != nil || ms <= 0 || ms > 1000 {
		t.Fatalf("x-acs-retry-after %q: want the ms until the next token (at most 1000)", resp.Header.Get("x-acs-retry-after"))
	}
	r.clk.Step(1001 * 1e6)
	if resp, body := r.c.rawSend(r.c.signed("DescribeRegions")); resp.StatusCode != 200 || resp.Header.Get("x-acs-retry-after") != "" {
		t.Fatalf("after waiting as told: %d %s", resp.StatusCode, body)
	}
}

func TestDescribeRegionsLanguagesAndNewRegions(t *testing.T) {
	r := newRig(t, nil)
	names := func(lang string) map[string]string {
		kv := []string{}
		if lang != "" {
			kv = []string{"AcceptLanguage", lang}
		}
		out := map[string]string{}
		for _, x := range r.c.ok("DescribeRegions", kv...)["Regions"].(map[string]any)["Region"].([]any) {
			m := x.(map[string]any)
			out[m["RegionId"].(string)] = m["LocalName"].(string)
		}
		return out
	}
	zh, en, ja := names(""), names("en-US"), names("ja")
	for id, want := range map[string][3]string{
		"cn-hangzhou":    {"华东1（杭州）", "China (Hangzhou)", "中国 (杭州)"},
		"cn-heyuan":      {"华南2（河源）", "China (Heyuan)", "中国 (河源)"},
		"ap-northeast-2": {"韩国（首尔）", "South Korea (Seoul)", "韓国 (ソウル)"},
	} {
		if zh[id] != want[0] || en[id] != want[1] || ja[id] != want[2] {
			t.Errorf("%s: %q %q %q, want %v", id, zh[id], en[id], ja[id], want)
		}
	}
	if zhCN := names("zh-CN"); zhCN["cn-hangzhou"] != zh["cn-hangzhou"] {
		t.Error("zh-CN is not the default")
	}
}
