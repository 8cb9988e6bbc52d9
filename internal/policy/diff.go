package policy

import "reflect"

// Diff compares two files by policy: names only in new are added, names
// only in old removed, and names in both whose policy differs in any way
// are changed. Each list is in the order of the file it comes from. A nil
// file has no policies.
func Diff(old, new *File) (added, removed, changed []string) {
	var oldPs, newPs []Policy
	if old != nil {
		oldPs = old.Policies
	}
	if new != nil {
		newPs = new.Policies
	}
	byName := map[string]*Policy{}
	for i := range oldPs {
		byName[oldPs[i].Name] = &oldPs[i]
	}
	inNew := map[string]bool{}
	for i := range newPs {
		n := &newPs[i]
		inNew[n.Name] = true
		o, ok := byName[n.Name]
		switch {
		case !ok:
			added = append(added, n.Name)
		case !o.Equal(n):
			changed = append(changed, n.Name)
		}
	}
	for i := range oldPs {
		if !inNew[oldPs[i].Name] {
			removed = append(removed, oldPs[i].Name)
		}
	}
	return added, removed, changed
}

// Equal reports whether two policies mean the same, ignoring where in the
// file they were written.
func (p *Policy) Equal(q *Policy) bool {
	a, b := *p, *q
	a.c, b.c = nil, nil
	return reflect.DeepEqual(a, b)
}
