package policy

import (
	"math"
	"path"
	"sort"
	"strings"
	"text/template"

	"gopkg.in/yaml.v3"

	"github.com/replicatord/replicatord/internal/input"
)

// keyPolicyName is the one key a policy decodes before the others.
const keyPolicyName = "name"

// policy decodes one policy. It returns the node of its name for duplicate
// reports.
func (d *decoder) policy(n *yaml.Node, at scope) (Policy, *yaml.Node) {
	p := Policy{Interval: DefaultInterval, Enabled: true, c: &compiled{}}
	n = d.resolve(n)
	if n == nil {
		return p, nil
	}
	if n.Kind != yaml.MappingNode {
		d.fieldErrorf(n, at, "expected a policy (a mapping), got %s", kindName(n))
		return p, n
	}
	p.c.at = pos{n.Line, n.Column}
	// The name comes first, so that every other problem can say which
	// policy it is in.
	sc := scope{label: at.path}
	var nameNode *yaml.Node
	for _, pr := range d.pairs(n, at, 0) {
		if pr.name == keyPolicyName {
			nameNode = d.resolve(pr.val)
			var name string
			d.str(pr.val, sc.at(keyPolicyName), &name)
			if name == "" {
				d.errorf(nameNode, sc, "name must not be empty")
			} else if !policyNameRE.MatchString(name) {
				d.errorf(nameNode, sc, "name %s must be 1 to 63 lowercase letters, digits and \"-\", starting with a letter or digit", quote(name))
			} else {
				p.Name = name
				sc = scope{policy: name}
			}
			break
		}
	}
	if nameNode == nil {
		nameNode = n
	}
	var srcNode, dstNode, copyNode *yaml.Node
	var tn tmplNodes
	seen := d.mapping(n, sc, fields{
		keyPolicyName:  func(_, _ *yaml.Node, _ scope) {}, // decoded first, above
		"source":       func(_, v *yaml.Node, ks scope) { srcNode = d.resolve(v); d.source(v, ks, &p) },
		"destinations": func(_, v *yaml.Node, ks scope) { dstNode = d.resolve(v); d.destinations(v, ks, &p) },
		"copy":         func(_, v *yaml.Node, ks scope) { copyNode = d.resolve(v); tn = d.copySpec(v, ks, &p.Copy) },
		"retention": func(_, v *yaml.Node, ks scope) {
			d.mapping(v, ks, fields{
				"keep_last": func(_, v *yaml.Node, ks scope) {
					var x int64
					if d.intIn(v, ks, 1, math.MaxInt32, &x) {
						p.Retention.KeepLast = int(x)
					}
				},
				"per_family":    func(_, v *yaml.Node, ks scope) { d.boolean(v, ks, &p.Retention.PerFamily) },
				"prune_adopted": func(_, v *yaml.Node, ks scope) { d.boolean(v, ks, &p.Retention.PruneAdopted) },
			})
			if p.Retention.PerFamily && p.Retention.KeepLast == 0 {
				d.errorf(d.resolve(v), sc, "retention.per_family needs keep_last")
			}
		},
		"max_size_gib": func(_, v *yaml.Node, ks scope) {
			d.intIn(v, ks, 1, math.MaxInt32, &p.MaxSizeGiB)
		},
		"priority": func(_, v *yaml.Node, ks scope) {
			var x int64
			if d.intIn(v, ks, -1000, 1000, &x) {
				p.Priority = int32(x)
			}
		},
		"interval": func(_, v *yaml.Node, ks scope) {
			if d.duration(v, ks, &p.Interval) && p.Interval < MinInterval {
				d.fieldErrorf(d.resolve(v), ks, "%s is below the minimum of %s (each run lists images in every region of the policy)", p.Interval, fmtDuration(MinInterval))
				p.Interval = DefaultInterval
			}
		},
		"enabled": func(_, v *yaml.Node, ks scope) { d.boolean(v, ks, &p.Enabled) },
	})
	if _, ok := seen[keyPolicyName]; !ok {
		d.errorf(n, sc, "name is missing")
	}
	if srcNode == nil {
		d.errorf(n, sc, "source is missing")
	}
	if dstNode == nil {
		d.errorf(n, sc, "destinations is missing")
	}
	// Cross-field checks.
	for i, dst := range p.Destinations {
		if dst.Region != "" && dst.Region == p.Source.Region {
			d.errorf(posNode(p.c.dstRegion[i]), sc, "destination region %s equals the source region", dst.Region)
		}
	}
	if d.broke {
		return p, nameNode
	}
	if tn.name == nil {
		tn.name = copyNode
	}
	if tn.desc == nil {
		tn.desc = copyNode
	}
	d.compileTemplates(&p, sc, tn)
	if def, err := yaml.Marshal(n); err == nil && len(def) < MaxFileSize {
		p.c.definition = string(def)
	}
	return p, nameNode
}

func posNode(p pos) *yaml.Node { return &yaml.Node{Line: p.line, Column: p.col} }

func fmtDuration(d interface{ String() string }) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	s = strings.TrimSuffix(s, "0m")
	if s == "" {
		return "0s"
	}
	return s
}

func (d *decoder) source(n *yaml.Node, sc scope, p *Policy) {
	var imagesNode *yaml.Node
	seen := d.mapping(n, sc, fields{
		"region": func(_, v *yaml.Node, ks scope) {
			v = d.resolve(v)
			d.str(v, ks, &p.Source.Region)
			if v != nil {
				p.c.srcRegion = pos{v.Line, v.Column}
			}
			d.checkRegion(v, ks, p.Source.Region)
		},
		"images": func(_, v *yaml.Node, ks scope) {
			imagesNode = d.resolve(v)
			d.selector(v, ks, &p.Source.Images, false)
		},
		"exclude": func(_, v *yaml.Node, ks scope) { d.selector(v, ks, &p.Source.Exclude, true) },
	})
	at := d.resolve(n)
	if at == nil || at.Kind != yaml.MappingNode {
		return
	}
	if _, ok := seen["region"]; !ok {
		d.errorf(at, sc, "source.region is missing")
	}
	if imagesNode == nil {
		d.errorf(at, sc, "source.images is missing; give ids, name or tags to choose the images")
	} else if imagesNode.Kind == yaml.MappingNode && p.Source.Images.empty() {
		d.errorf(imagesNode, sc, "source.images needs at least one of ids, name or tags (use name: \"*\" to mean every image)")
	}
}

func (d *decoder) checkRegion(v *yaml.Node, sc scope, region string) {
	if v == nil {
		return
	}
	if region == "" {
		d.fieldErrorf(v, sc, "must not be empty")
	} else if !regionRE.MatchString(region) {
		d.fieldErrorf(v, sc, "%s is not a region id (like cn-hangzhou)", quote(region))
	}
}

func (d *decoder) selector(n *yaml.Node, sc scope, s *Selector, exclude bool) {
	d.mapping(n, sc, fields{
		"ids": func(_, v *yaml.Node, ks scope) {
			var nodes []*yaml.Node
			s.IDs, nodes = d.strList(v, ks)
			seen := map[string]bool{}
			for i, id := range s.IDs {
				if !imageIDRE.MatchString(id) {
					d.fieldErrorf(nodes[i], ks.index(i), "%s is not an image id (like m-bp1abcdefghijklmnopq)", quote(id))
				} else if seen[id] {
					d.fieldErrorf(nodes[i], ks.index(i), "%s is listed twice", id)
				}
				seen[id] = true
			}
		},
		"name": func(_, v *yaml.Node, ks scope) {
			d.str(v, ks, &s.Name)
			if s.Name == "" {
				d.fieldErrorf(d.resolve(v), ks, "must not be empty (use \"*\" for every name)")
			} else if _, err := path.Match(s.Name, ""); err != nil {
				d.fieldErrorf(d.resolve(v), ks, "%s is not a valid glob: %v", quote(s.Name), err)
			}
		},
		"tags": func(_, v *yaml.Node, ks scope) {
			var keys map[string]*yaml.Node
			s.Tags, keys = d.strMap(v, ks)
			for _, k := range sortedKeys(s.Tags) {
				switch {
				case k == "":
					d.errorf(keys[k], sc, "%s: tag keys must not be empty", ks.path)
				case input.CheckControl(k) != nil:
					d.errorf(keys[k], sc, "%s: tag key %s %v", ks.path, quote(k), input.CheckControl(k))
				case input.CheckControl(s.Tags[k]) != nil:
					d.errorf(keys[k], sc, "%s: the value of tag %s %v", ks.path, quote(k), input.CheckControl(s.Tags[k]))
				}
			}
			if len(s.Tags) > 20 {
				d.fieldErrorf(d.resolve(v), ks, "at most 20 tags can be matched (DescribeImages takes Tag.1 to Tag.20)")
			}
		},
		"newest": func(key, v *yaml.Node, ks scope) {
			if exclude {
				d.errorf(key, sc, "%s: newest is not allowed in exclude", sc.path)
				return
			}
			var x int64
			if d.integer(v, ks, &x) {
				if x < 0 {
					d.fieldErrorf(d.resolve(v), ks, "%d is negative; use a positive count, or leave it out for every match", x)
				} else if x > math.MaxInt32 {
					d.fieldErrorf(d.resolve(v), ks, "%d is too large", x)
				} else {
					s.Newest = int(x)
				}
			}
		},
	})
}

// keyDestinationRegion is a destination's region key; the shorthand "-
// cn-shanghai" is reported as if it had been written with it.
const keyDestinationRegion = "region"

func (d *decoder) destinations(n *yaml.Node, sc scope, p *Policy) {
	n = d.resolve(n)
	if n == nil {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fieldErrorf(n, sc, "expected a list of destinations, got %s", kindName(n))
		return
	}
	if len(n.Content) == 0 {
		d.fieldErrorf(n, sc, "needs at least one destination region")
	}
	regions := map[string]int{}
	for i, c := range n.Content {
		isc := sc.index(i)
		var dst Destination
		var regionNode, kmsNode *yaml.Node
		encryptedSet := false
		c = d.resolve(c)
		if c == nil {
			return
		}
		// Shorthand: "- cn-shanghai" for a plain destination.
		if c.Kind == yaml.ScalarNode && c.ShortTag() != "!!null" {
			regionNode = c
			d.str(c, isc, &dst.Region)
		} else {
			seen := d.mapping(c, isc, fields{
				keyDestinationRegion: func(_, v *yaml.Node, ks scope) {
					regionNode = d.resolve(v)
					d.str(v, ks, &dst.Region)
				},
				"encrypted": func(_, v *yaml.Node, ks scope) { encryptedSet = true; d.boolean(v, ks, &dst.Encrypted) },
				"kms_key_id": func(_, v *yaml.Node, ks scope) {
					kmsNode = d.resolve(v)
					d.str(v, ks, &dst.KMSKeyID)
					if dst.KMSKeyID != "" && !kmsKeyRE.MatchString(dst.KMSKeyID) {
						d.fieldErrorf(kmsNode, ks, "%s is not a KMS key id or ARN", quote(dst.KMSKeyID))
					}
				},
			})
			if _, ok := seen[keyDestinationRegion]; !ok && c.Kind == yaml.MappingNode {
				d.errorf(c, sc, "%s.region is missing", isc.path)
			}
		}
		if regionNode != nil {
			d.checkRegion(regionNode, isc.at(keyDestinationRegion), dst.Region)
			if first, dup := regions[dst.Region]; dup && dst.Region != "" {
				d.errorf(regionNode, sc, "destination region %s is listed twice (first at line %d)", dst.Region, first)
			} else {
				regions[dst.Region] = regionNode.Line
			}
			p.c.dstRegion = append(p.c.dstRegion, pos{regionNode.Line, regionNode.Column})
		} else {
			p.c.dstRegion = append(p.c.dstRegion, pos{c.Line, c.Column})
		}
		if dst.KMSKeyID != "" && !dst.Encrypted {
			msg := "kms_key_id requires encrypted: true"
			if encryptedSet {
				msg = "kms_key_id requires encrypted: true (it is false)"
			}
			d.errorf(kmsNode, sc, "%s.%s", isc.path, msg)
		}
		p.Destinations = append(p.Destinations, dst)
	}
}

// tmplNodes are the nodes of the copy templates, for locating their errors.
type tmplNodes struct{ name, desc *yaml.Node }

func (d *decoder) copySpec(n *yaml.Node, sc scope, c *Copy) (tn tmplNodes) {
	d.mapping(n, sc, fields{
		"name": func(_, v *yaml.Node, ks scope) {
			tn.name = d.resolve(v)
			d.str(v, ks, &c.Name)
			if c.Name == "" {
				d.fieldErrorf(d.resolve(v), ks, "must not be empty (leave it out for %s)", DefaultCopyName)
			}
		},
		"description": func(_, v *yaml.Node, ks scope) { tn.desc = d.resolve(v); d.str(v, ks, &c.Description) },
		"tags": func(_, v *yaml.Node, ks scope) {
			var keys map[string]*yaml.Node
			c.Tags, keys = d.strMap(v, ks)
			for _, k := range sortedKeys(c.Tags) {
				if err := checkTag(k, c.Tags[k]); err != nil {
					d.errorf(keys[k], sc, "%s: %v", ks.path, err)
				}
			}
			if max := MaxTags - lineageTagCount; len(c.Tags) > max {
				d.fieldErrorf(d.resolve(v), ks, "%d tags is more than %d (ECS takes %d tags per copy and replicatord adds %d lineage tags)", len(c.Tags), max, MaxTags, lineageTagCount)
			}
		},
		"copy_source_tags": func(_, v *yaml.Node, ks scope) { d.boolean(v, ks, &c.CopySourceTags) },
		"image_family": func(_, v *yaml.Node, ks scope) {
			d.str(v, ks, &c.ImageFamily)
			if c.ImageFamily != "" && c.ImageFamily != FamilyInherit {
				if err := CheckFamily(c.ImageFamily); err != nil {
					d.fieldErrorf(d.resolve(v), ks, "%v (or use inherit)", err)
				}
			}
		},
		"share_with_accounts": func(_, v *yaml.Node, ks scope) {
			var nodes []*yaml.Node
			c.ShareWithAccounts, nodes = d.strList(v, ks)
			seen := map[string]bool{}
			for i, a := range c.ShareWithAccounts {
				if !accountRE.MatchString(a) {
					d.fieldErrorf(nodes[i], ks.index(i), "%s is not an Alibaba Cloud account id (digits only)", quote(a))
				} else if seen[a] {
					d.fieldErrorf(nodes[i], ks.index(i), "account %s is listed twice", a)
				}
				seen[a] = true
			}
			if len(c.ShareWithAccounts) > 50 {
				d.fieldErrorf(d.resolve(v), ks, "an image can be shared with at most 50 accounts")
			}
		},
	})
	return tn
}

// compileTemplates parses the copy templates and test-renders them with a
// sample source into every destination, so that a broken template or one
// that can never give a valid name is refused at load.
func (d *decoder) compileTemplates(p *Policy, sc scope, tn tmplNodes) {
	if tn.name == nil {
		tn.name = posNode(p.c.at)
	}
	if tn.desc == nil {
		tn.desc = posNode(p.c.at)
	}
	nameText := p.Copy.Name
	if nameText == "" {
		nameText = DefaultCopyName
	}
	nt, err := compileTemplate("name", nameText)
	if err != nil {
		d.errorf(tn.name, sc, "copy.name is not a valid template: %v", err)
	}
	var dt *template.Template
	if p.Copy.Description != "" {
		if dt, err = compileTemplate("description", p.Copy.Description); err != nil {
			d.errorf(tn.desc, sc, "copy.description is not a valid template: %v", err)
			nt = nil
		}
	}
	if nt == nil {
		return
	}
	p.c.name, p.c.desc = nt, dt
	src := sampleImage(p.Source.Region, nt, dt)
	dsts := p.Destinations
	if len(dsts) == 0 {
		dsts = []Destination{{Region: "cn-shanghai"}}
	}
	reported := map[string]bool{}
	report := func(at *yaml.Node, err error) {
		if err != nil && !reported[err.Error()] {
			reported[err.Error()] = true
			d.errorf(at, sc, "test render failed: %v", err)
		}
	}
	for _, dst := range dsts {
		data := p.data(src, dst.Region)
		_, err := renderName(nt, data)
		report(tn.name, err)
		if dt != nil {
			_, err := renderDescription(dt, data)
			report(tn.desc, err)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
