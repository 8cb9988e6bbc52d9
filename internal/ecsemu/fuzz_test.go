package ecsemu_test

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/ecsemu"
)

// checkAnswer asserts the invariants of every answer: a JSON object, and for
// an error the five string fields.
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "text/xml") {
		// Format=XML: the same invariants in XML.
		var x struct {
			XMLName                                     xml.Name
			RequestId, HostId, Code, Message, Recommend string
		}
		if err := xml.Unmarshal(rec.Body.Bytes(), &x); err != nil {
			t.Fatalf("status %d: body is not XML: %q", rec.Code, rec.Body.Bytes())
		}
		if rec.Code >= 300 && (x.XMLName.Local != "Error" || x.RequestId == "" || x.Code == "" || x.Message == "" || x.Recommend == "") {
			t.Fatalf("status %d: XML error lacks a field: %q", rec.Code, rec.Body.Bytes())
		}
		return
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("status %d: body is not JSON: %q", rec.Code, rec.Body.Bytes())
	}
	if rec.Code < 200 || rec.Code > 599 {
		t.Fatalf("status %d", rec.Code)
	}
	if rec.Code >= 300 {
		for _, k := range []string{"RequestId", "HostId", "Code", "Message", "Recommend"} {
			if s, ok := m[k].(string); !ok || s == "" {
				t.Fatalf("status %d: %s is not a non-empty string: %q", rec.Code, k, rec.Body.Bytes())
			}
		}
	}
}

// FuzzServeHTTP sends garbage requests, raw and signed. With sign set, the
// fuzzed query is parsed into parameters, the common ones are added for one
// of the actions and the request is signed, so that the garbage reaches the
// actions' parameter handling.
func FuzzServeHTTP(f *testing.F) {
	f.Add(uint8(0), "Action=DescribeRegions", "", false)
	f.Add(uint8(1), "RegionId=cn-hangzhou&ImageId=m-bp1g7004ksh0oeuco4r2&DestinationRegionId=cn-beijing&Tag.1.Key=a&Tag.1.Value=b", "", true)
	f.Add(uint8(2), "RegionId=cn-hangzhou&ImageId=a,b,c&Status=Creating,Waiting&PageSize=100&PageNumber=2&Tag.3.Key=x", "", true)
	f.Add(uint8(3), "RegionId=cn-beijing&ImageId=m-2ze", "", true)
	f.Add(uint8(4), "RegionId=cn-hangzhou&ResourceType=image&ResourceId.1=m-bp1g7004ksh0oeuco4r2&Tag.1.Key=k&NextToken=50", "", true)
	f.Add(uint8(5), "%zz&&;;==", "a=%ff&b", false)
	f.Add(uint8(6), "RegionId=cn-hangzhou&ImageId=m-bp1g7004ksh0oeuco4r2&AddAccount.11=1&RemoveAccount.0=2", "", true)
	f.Add(uint8(7), "RegionId=cn-hangzhou&ImageId=m-bp1g7004ksh0oeuco4r2&ImageName=%C3%A9t%C3%A9&Description=%00%01", "", true)
	f.Add(uint8(8), "Tag.999999999999.Key=x&ResourceId.-1=y", "", true)
	acts := ecsemu.Actions()
	clk := clock.NewFake(t0)
	emu, err := ecsemu.New(ecsemu.Config{Credentials: map[string]string{testKeyID: testSecret}, Clock: clk, ThrottleRate: -1})
	if err != nil {
		f.Fatal(err)
	}
	defer emu.Close()
	c := newClient(f, "http://emulator", clk)
	f.Fuzz(func(t *testing.T, sel uint8, rawQuery, body string, sign bool) {
		method := []string{http.MethodPost, http.MethodGet, http.MethodPut}[int(sel)%3]
		target := "/?" + rawQuery
		if sign {
			vals, _ := url.ParseQuery(rawQuery)
			p := c.commonParams(acts[int(sel)%len(acts)])
			for k, vs := range vals {
				if len(vs) > 0 {
					p[k] = vs[0]
				}
			}
			c.method = method
			_, p["Signature"] = testSign(method, p, testSecret)
			target = "/?" + query(p)
		}
		req := httptest.NewRequest(method, "http://emulator/", strings.NewReader(body))
		req.URL.RawQuery = strings.TrimPrefix(target, "/?")
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		emu.ServeHTTP(rec, req)
		checkAnswer(t, rec)
	})
}

// FuzzStateFile feeds garbage state files to New: an error or a working
// emulator, never a panic.
func FuzzStateFile(f *testing.F) {
	f.Add(`{"version":1}`)
	f.Add(`{"version":1,"queues":{"cn-beijing":{"base":[],"tasks":[null]}}}`)
	f.Add(`{"version":1,"images":[{"id":"m-bp1aaaaaaaaaaaaaaaaaaa","region":"cn-hangzhou","name":"x","sizeGiB":1,"copy":{"duration":1}}]}`)
	f.Add(`{"version":1,"stsSessions":[{"accessKeyId":"STS.x"}]}`)
	f.Fuzz(func(t *testing.T, content string) {
		path := t.TempDir() + "/state.json"
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		emu, err := ecsemu.New(ecsemu.Config{Credentials: map[string]string{testKeyID: testSecret}, Clock: fakeAt(), StateFile: path})
		if err != nil {
			return
		}
		defer emu.Close()
		rec := httptest.NewRecorder()
		c := newClient(t, "", fakeAt())
		p := c.signed("DescribeImages", "RegionId", "cn-beijing", "Status", "Waiting,Creating,Available,CreateFailed")
		q := url.Values{}
		for k, v := range p {
			q.Set(k, v)
		}
		emu.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/?"+q.Encode(), nil))
		checkAnswer(t, rec)
	})
}
