package policy

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/input"
	"github.com/replicatord/replicatord/internal/job"
)

// TemplateData is what copy name and description templates see.
type TemplateData struct {
	SourceName        string
	SourceImageID     string
	SourceRegion      string
	DestinationRegion string
	Policy            string
	Date              string // the source's creation date, YYYYMMDD (UTC)
	Tags              map[string]string
}

// maxRendered caps a rendered template; names are at most 128 characters,
// descriptions 256, so anything longer is a mistake (or a loop).
const maxRendered = 1024

// templateFuncs are the functions templates may call, besides the
// text/template builtins.
var templateFuncs = template.FuncMap{
	"lower":      strings.ToLower,
	"upper":      strings.ToUpper,
	"replace":    func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
	"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
	"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
	"truncate": func(n int, s string) string {
		r := []rune(s)
		if n >= 0 && len(r) > n {
			return string(r[:n])
		}
		return s
	},
}

// compileTemplate parses a copy name or description template. Named
// templates (define, block, template) are refused: they allow recursion,
// and a name needs none of it.
func compileTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(name).Funcs(templateFuncs).Option("missingkey=zero").Parse(text)
	if err != nil {
		return nil, cleanTemplateError(err)
	}
	if len(t.Templates()) > 1 || hasTemplateCall(t.Tree.Root) {
		return nil, errors.New("define, block and template actions are not supported")
	}
	return t, nil
}

func hasTemplateCall(n parse.Node) bool {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return false
		}
		for _, c := range n.Nodes {
			if hasTemplateCall(c) {
				return true
			}
		}
	case *parse.TemplateNode:
		return true
	case *parse.IfNode:
		return hasTemplateCall(n.List) || hasTemplateCall(n.ElseList)
	case *parse.RangeNode:
		return hasTemplateCall(n.List) || hasTemplateCall(n.ElseList)
	case *parse.WithNode:
		return hasTemplateCall(n.List) || hasTemplateCall(n.ElseList)
	}
	return false
}

var (
	tmplPrefixRE = regexp.MustCompile(`^template: (name|description):(\d+:)*\s*`)
	tmplExecRE   = regexp.MustCompile(`executing "[^"]*" at <([^>]*)>: (.*)$`)
	tmplFieldRE  = regexp.MustCompile(`can't evaluate field (\w+) in type`)
)

// cleanTemplateError rewrites a text/template error for users: no
// "template: name:1:2:" prefix, no Go type names.
func cleanTemplateError(err error) error {
	msg := err.Error()
	if m := tmplExecRE.FindStringSubmatch(msg); m != nil {
		if f := tmplFieldRE.FindStringSubmatch(m[2]); f != nil {
			return fmt.Errorf(".%s is not a template field; the fields are .SourceName, .SourceImageID, .SourceRegion, .DestinationRegion, .Policy, .Date and .Tags", f[1])
		}
		return fmt.Errorf("at <%s>: %s", m[1], m[2])
	}
	return errors.New(tmplPrefixRE.ReplaceAllString(msg, ""))
}

func execute(t *template.Template, data TemplateData) (string, error) {
	var b limitedBuffer
	if err := t.Execute(&b, data); err != nil {
		if errors.Is(err, errTooLong) {
			return "", fmt.Errorf("renders longer than %d characters", maxRendered)
		}
		return "", cleanTemplateError(err)
	}
	return b.String(), nil
}

var errTooLong = errors.New("too long")

type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxRendered {
		return 0, errTooLong
	}
	return b.Buffer.Write(p)
}

// data returns the template data of copying src to dst.
func (p *Policy) data(src cloud.Image, dst string) TemplateData {
	date := ""
	if !src.CreationTime.IsZero() {
		date = src.CreationTime.UTC().Format("20060102")
	}
	tags := make(map[string]string, len(src.Tags))
	for k, v := range src.Tags {
		tags[k] = v
	}
	region := src.Region
	if region == "" {
		region = p.Source.Region
	}
	return TemplateData{
		SourceName: src.Name, SourceImageID: src.ID, SourceRegion: region,
		DestinationRegion: dst, Policy: p.Name, Date: date, Tags: tags,
	}
}

// Render returns the name and description of the copy of src in dst. A
// result that breaks the ECS rules is an error naming the rule; the planner
// reports it as Blocked.
func (p *Policy) Render(src cloud.Image, dst Destination) (name, description string, err error) {
	nameT, descT, err := p.templates()
	if err != nil {
		return "", "", err
	}
	d := p.data(src, dst.Region)
	if name, err = renderName(nameT, d); err != nil {
		return "", "", err
	}
	if descT != nil {
		if description, err = renderDescription(descT, d); err != nil {
			return "", "", err
		}
	}
	return name, description, nil
}

func renderName(t *template.Template, d TemplateData) (string, error) {
	name, err := execute(t, d)
	if err != nil {
		return "", fmt.Errorf("copy.name: %w", err)
	}
	if err := CheckImageName(name); err != nil {
		return "", fmt.Errorf("copy.name renders %s, which is not a valid ECS image name: it %w", quote(name), err)
	}
	return name, nil
}

func renderDescription(t *template.Template, d TemplateData) (string, error) {
	desc, err := execute(t, d)
	if err != nil {
		return "", fmt.Errorf("copy.description: %w", err)
	}
	if err := CheckDescription(desc); err != nil {
		return "", fmt.Errorf("copy.description renders %s, which is not a valid ECS description: it %w", quote(desc), err)
	}
	return desc, nil
}

// templates returns the compiled templates, compiling them for a Policy
// built by hand.
func (p *Policy) templates() (name, desc *template.Template, err error) {
	if p.c != nil && p.c.name != nil {
		return p.c.name, p.c.desc, nil
	}
	text := p.Copy.Name
	if text == "" {
		text = DefaultCopyName
	}
	if name, err = compileTemplate("name", text); err != nil {
		return nil, nil, fmt.Errorf("copy.name: %w", err)
	}
	if p.Copy.Description != "" {
		if desc, err = compileTemplate("description", p.Copy.Description); err != nil {
			return nil, nil, fmt.Errorf("copy.description: %w", err)
		}
	}
	return name, desc, nil
}

// sampleImage is the source a template is test-rendered with at load. Its
// tags hold every key the template reads (.Tags.key or index .Tags "key"),
// so that a template depending on a tag is not refused for the tag's
// absence.
func sampleImage(region string, trees ...*template.Template) cloud.Image {
	tags := map[string]string{}
	for _, t := range trees {
		if t != nil {
			collectTagKeys(t.Tree.Root, tags)
		}
	}
	return cloud.Image{
		ID: "m-sample0000000000000", Region: region, Name: "sample-image-20260101",
		CreationTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), SizeGiB: 40, Status: cloud.StatusAvailable,
		Tags: tags,
	}
}

func collectTagKeys(n parse.Node, tags map[string]string) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n != nil {
			for _, c := range n.Nodes {
				collectTagKeys(c, tags)
			}
		}
	case *parse.ActionNode:
		collectTagKeys(n.Pipe, tags)
	case *parse.PipeNode:
		if n != nil {
			for _, c := range n.Cmds {
				collectTagKeys(c, tags)
			}
		}
	case *parse.CommandNode:
		for i, a := range n.Args {
			if f, ok := a.(*parse.FieldNode); ok && len(f.Ident) >= 2 && f.Ident[0] == "Tags" {
				tags[f.Ident[1]] = "sample"
			}
			// index .Tags "key"
			if id, ok := a.(*parse.IdentifierNode); ok && id.Ident == "index" && i+2 < len(n.Args) {
				if f, ok := n.Args[i+1].(*parse.FieldNode); ok && len(f.Ident) == 1 && f.Ident[0] == "Tags" {
					if s, ok := n.Args[i+2].(*parse.StringNode); ok {
						tags[s.Text] = "sample"
					}
				}
			}
			collectTagKeys(a, tags)
		}
	case *parse.IfNode:
		collectTagKeys(n.Pipe, tags)
		collectTagKeys(n.List, tags)
		collectTagKeys(n.ElseList, tags)
	case *parse.RangeNode:
		collectTagKeys(n.Pipe, tags)
		collectTagKeys(n.List, tags)
		collectTagKeys(n.ElseList, tags)
	case *parse.WithNode:
		collectTagKeys(n.Pipe, tags)
		collectTagKeys(n.List, tags)
		collectTagKeys(n.ElseList, tags)
	}
}

// MaxTags is how many tags ECS takes on one CopyImage (Tag.1..Tag.20).
const MaxTags = 20

// lineageTagCount is how many lineage tags a copy carries (job.Tag*).
const lineageTagCount = 5

// CopyTags returns the tags of the copy of src, without the per-job lineage
// tags: the source's tags (when copy_source_tags; keys reserved by the cloud
// or by replicatord are skipped), overridden by the policy's copy.tags,
// overridden by the lineage tags this package can know — policy, source
// image and source region. The scheduler adds replicatord:job-id and
// replicatord:attempt, which only it knows, when it sends CopyImage; the
// reconciler finds copies by replicatord:policy and matches them to sources
// by replicatord:source-image, so those are set here, where the plan is made.
func (p *Policy) CopyTags(src cloud.Image) map[string]string {
	tags := map[string]string{}
	if p.Copy.CopySourceTags {
		for k, v := range src.Tags {
			if !hasReservedPrefix(k) && !input.HasPrefixFold(k, lineagePrefix) {
				tags[k] = v
			}
		}
	}
	for k, v := range p.Copy.Tags {
		tags[k] = v
	}
	region := src.Region
	if region == "" {
		region = p.Source.Region
	}
	tags[job.TagPolicy] = p.Name
	tags[job.TagSourceImage] = src.ID
	tags[job.TagSourceRegion] = region
	return tags
}

// checkCopyTags returns why the tags of a copy cannot be sent, or nil.
func checkCopyTags(tags map[string]string) error {
	// The scheduler adds job-id and attempt to what CopyTags returns.
	if n := len(tags) + 2; n > MaxTags {
		return fmt.Errorf("the copy would carry %d tags (source tags, copy.tags and %d lineage tags), more than the %d ECS accepts", n, lineageTagCount, MaxTags)
	}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.HasPrefix(k, lineagePrefix) {
			continue
		}
		if err := checkTag(k, tags[k]); err != nil {
			return fmt.Errorf("source tag: %w", err)
		}
	}
	return nil
}

// Family returns the image family the copy of src gets: the source's own
// with "inherit", the configured one otherwise ("" = none).
func (p *Policy) Family(src cloud.Image) string {
	if p.Copy.ImageFamily == FamilyInherit {
		return src.Family
	}
	return p.Copy.ImageFamily
}
