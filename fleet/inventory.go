package fleet

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrInventory is matched by the errors of ParseInventory, ReadInventory
// and Inventory.Limit: a line or node that is not inventory syntax, or a
// limit pattern that names no group or host.
var ErrInventory = errors.New("fleet: bad inventory")

// Inventory is a list of hosts with groups and per-host variables, as an
// Ansible inventory (INI or YAML) describes them. Read one with
// ReadInventory or ParseInventory; choose hosts with Limit.
type Inventory struct {
	// Hosts lists every host once, in the order the file first names it.
	Hosts []InventoryHost
	// Groups maps each group to the names of its hosts, its children's
	// included, in Hosts order. "all" holds every host and "ungrouped"
	// those in no group but all.
	Groups map[string][]string
}

// InventoryHost is one host of an Inventory.
type InventoryHost struct {
	// Name is the host's name in the inventory.
	Name string
	// Vars are its variables: those of "all", then of its groups from
	// the outermost to the innermost (by name among equals), then its
	// own, each overriding the one before, as Ansible merges them.
	// Values that are not strings are kept in YAML's flow form.
	Vars map[string]string
}

// Address returns the host as the executors take it,
// "[user@]host[:port]": ansible_host (or the name), ansible_port and
// ansible_user (ansible_ssh_host, _port and _user too) when set.
func (h InventoryHost) Address() string {
	v := func(k string) string { return cmpOr(h.Vars["ansible_"+k], h.Vars["ansible_ssh_"+k]) }
	host := cmpOr(v("host"), h.Name)
	if p := v("port"); p != "" {
		host = net.JoinHostPort(strings.Trim(host, "[]"), p)
	}
	if u := v("user"); u != "" {
		host = u + "@" + host
	}
	return host
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ReadInventory reads an Ansible inventory file: YAML when its name ends
// in .yml, .yaml or .json (JSON is YAML), INI otherwise, as ParseInventory
// decides.
func ReadInventory(file string) (*Inventory, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("fleet: inventory: %w", err)
	}
	switch strings.ToLower(filepath.Ext(file)) {
	case ".yml", ".yaml", ".json":
		return parseInventoryYAML(b)
	}
	return ParseInventory(bytes.NewReader(b))
}

// ParseInventory reads an Ansible inventory in INI form:
//
//	mail.example.com
//	[web]
//	web[01:03].example.com ansible_user=deploy
//	db.example.com:2222
//	[web:vars]
//	http_port=8080
//	[prod:children]
//	web
//
// Host lines are a name (with an optional :port and [a:b] ranges, numeric
// with leading zeros kept or alphabetic, and an optional :step) and
// key=value variables; [group:vars] and [group:children] sections set
// group variables and nest groups. ';' and '#' start comments. Input that
// starts with "---" or a top-level "name:" key is read as YAML instead. A
// line it cannot read is an error matching ErrInventory that names it.
func ParseInventory(r io.Reader) (*Inventory, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("fleet: inventory: %w", err)
	}
	if looksYAML(b) {
		return parseInventoryYAML(b)
	}
	return parseInventoryINI(b)
}

// looksYAML reports whether the first meaningful line is a YAML document
// start or a "key:" mapping.
func looksYAML(b []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";") {
			continue
		}
		return l == "---" || l == "{" || (strings.HasSuffix(l, ":") && !strings.ContainsAny(l, " =[")) || strings.HasPrefix(l, "all:")
	}
	return false
}

// builder collects hosts, groups and vars in file order.
type builder struct {
	order     []string
	hostVars  map[string]map[string]string
	members   map[string][]string // group -> direct hosts
	inGroup   map[string]bool     // group+"\x00"+host for each direct member
	children  map[string][]string // group -> child groups
	groupVars map[string]map[string]string
	groups    []string // in order seen
}

func newBuilder() *builder {
	return &builder{hostVars: map[string]map[string]string{}, members: map[string][]string{}, inGroup: map[string]bool{},
		children: map[string][]string{}, groupVars: map[string]map[string]string{}}
}

func (b *builder) group(g string) {
	if _, ok := b.members[g]; !ok {
		b.members[g] = nil
		b.groups = append(b.groups, g)
	}
}

func (b *builder) host(g, h string, vars map[string]string) {
	if _, ok := b.hostVars[h]; !ok {
		b.hostVars[h] = map[string]string{}
		b.order = append(b.order, h)
	}
	for k, v := range vars {
		b.hostVars[h][k] = v
	}
	b.group(g)
	if k := g + "\x00" + h; !b.inGroup[k] {
		b.inGroup[k] = true
		b.members[g] = append(b.members[g], h)
	}
}

func (b *builder) child(parent, child string) {
	b.group(parent)
	b.group(child)
	if !slices.Contains(b.children[parent], child) {
		b.children[parent] = append(b.children[parent], child)
	}
}

func (b *builder) setGroupVar(g, k, v string) {
	b.group(g)
	if b.groupVars[g] == nil {
		b.groupVars[g] = map[string]string{}
	}
	b.groupVars[g][k] = v
}

// build resolves nesting: each group's hosts, each host's groups by depth.
func (b *builder) build() (*Inventory, error) {
	b.group("all")
	// Every top-level group is a child of all.
	isChild := map[string]bool{}
	for _, cs := range b.children {
		for _, c := range cs {
			isChild[c] = true
		}
	}
	for _, g := range b.groups {
		if g != "all" && !isChild[g] {
			b.child("all", g)
		}
	}
	depth := map[string]int{"all": 0}
	inv := &Inventory{Groups: map[string][]string{}}
	var visit func(g string, d int, path []string) error
	visit = func(g string, d int, path []string) error {
		if slices.Contains(path, g) {
			return fmt.Errorf("%w: group %s contains itself (%s)", ErrInventory, g, strings.Join(append(path, g), " > "))
		}
		if cur, ok := depth[g]; !ok || d > cur {
			depth[g] = d
		}
		for _, c := range b.children[g] {
			if err := visit(c, d+1, append(path, g)); err != nil {
				return err
			}
		}
		return nil
	}
	for _, g := range b.groups { // a cycle unreachable from all too
		if err := visit(g, depth[g], nil); err != nil {
			return nil, err
		}
	}
	// hostsOf: a group's hosts, its children's included, in file order.
	memo := map[string]map[string]bool{}
	var hostsOf func(g string) map[string]bool
	hostsOf = func(g string) map[string]bool {
		if m, ok := memo[g]; ok {
			return m
		}
		m := map[string]bool{}
		for _, h := range b.members[g] {
			m[h] = true
		}
		for _, c := range b.children[g] {
			for h := range hostsOf(c) {
				m[h] = true
			}
		}
		memo[g] = m
		return m
	}
	grouped := map[string]bool{}
	for _, g := range b.groups {
		if g != "all" && g != "ungrouped" {
			for h := range hostsOf(g) {
				grouped[h] = true
			}
		}
	}
	for _, g := range b.groups {
		set := hostsOf(g)
		if g == "all" {
			set = map[string]bool{}
			for _, h := range b.order {
				set[h] = true
			}
		}
		var names []string
		for _, h := range b.order {
			if set[h] {
				names = append(names, h)
			}
		}
		inv.Groups[g] = names
	}
	var ungrouped []string
	for _, h := range b.order {
		if !grouped[h] {
			ungrouped = append(ungrouped, h)
		}
	}
	inv.Groups["ungrouped"] = ungrouped
	// Vars: all, then the host's groups by depth and name, then its own.
	for _, h := range b.order {
		var gs []string
		for _, g := range b.groups {
			if g != "all" && hostsOf(g)[h] {
				gs = append(gs, g)
			}
		}
		slices.SortStableFunc(gs, func(x, y string) int {
			if depth[x] != depth[y] {
				return depth[x] - depth[y]
			}
			return strings.Compare(x, y)
		})
		vars := map[string]string{}
		for _, g := range append([]string{"all"}, gs...) {
			for k, v := range b.groupVars[g] {
				vars[k] = v
			}
		}
		for k, v := range b.hostVars[h] {
			vars[k] = v
		}
		inv.Hosts = append(inv.Hosts, InventoryHost{Name: h, Vars: vars})
	}
	return inv, nil
}

func parseInventoryINI(data []byte) (*Inventory, error) {
	b := newBuilder()
	section, kind := "ungrouped", "hosts"
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: line %d: %s", ErrInventory, n, fmt.Sprintf(format, args...))
		}
		if line[0] == '[' {
			end := strings.IndexByte(line, ']')
			if end < 0 || strings.TrimSpace(line[end+1:]) != "" && !strings.HasPrefix(strings.TrimSpace(line[end+1:]), "#") {
				return nil, bad("bad section header %q", line)
			}
			name := line[1:end]
			section, kind = name, "hosts"
			if g, k, ok := strings.Cut(name, ":"); ok {
				section, kind = g, k
			}
			if section == "" || strings.ContainsAny(section, " \t") || (kind != "hosts" && kind != "vars" && kind != "children") {
				return nil, bad("bad section header %q", line)
			}
			b.group(section)
			continue
		}
		fields, err := splitINI(line)
		if err != nil {
			return nil, bad("%v", err)
		}
		switch kind {
		case "vars":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return nil, bad("want key=value in [%s:vars], got %q", section, line)
			}
			v = strings.TrimSpace(v)
			if uq, err := strconv.Unquote(v); err == nil {
				v = uq
			} else if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
				v = v[1 : len(v)-1]
			}
			b.setGroupVar(section, strings.TrimSpace(k), v)
		case "children":
			if len(fields) != 1 {
				return nil, bad("want one group name in [%s:children], got %q", section, line)
			}
			b.child(section, fields[0])
		default:
			vars := map[string]string{}
			for _, f := range fields[1:] {
				k, v, ok := strings.Cut(f, "=")
				if !ok || k == "" {
					return nil, bad("want key=value after the host, got %q", f)
				}
				vars[k] = v
			}
			name, port := fields[0], ""
			if i := strings.LastIndexByte(name, ':'); i > 0 && !strings.Contains(name[:i], ":") {
				if _, err := strconv.Atoi(name[i+1:]); err == nil {
					name, port = name[:i], name[i+1:]
				}
			}
			names, err := expandRange(name)
			if err != nil {
				return nil, bad("%v", err)
			}
			if port != "" {
				vars["ansible_port"] = port
			}
			for _, h := range names {
				if err := CheckHost(h); err != nil {
					return nil, bad("%v", err)
				}
				b.host(section, h, vars)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("fleet: inventory: %w", err)
	}
	return b.build()
}

// splitINI splits a line into words, keeping quoted values together and
// dropping a trailing comment.
func splitINI(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	var quote byte
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			return out, nil
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in %q", line)
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// expandRange expands Ansible's host ranges: "web[01:03]" is web01,
// web02, web03; "db-[a:c]" is db-a, db-b, db-c; "[1:9:4]" steps by 4.
func expandRange(name string) ([]string, error) {
	i := strings.IndexByte(name, '[')
	if i < 0 {
		return []string{name}, nil
	}
	j := strings.IndexByte(name[i:], ']')
	if j < 0 {
		return nil, fmt.Errorf("unterminated range in %q", name)
	}
	j += i
	parts := strings.Split(name[i+1:j], ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		// IPv6 literals and other brackets are not ranges.
		return []string{name}, nil
	}
	step := 1
	if len(parts) == 3 {
		s, err := strconv.Atoi(parts[2])
		if err != nil || s < 1 {
			return nil, fmt.Errorf("bad range step in %q", name)
		}
		step = s
	}
	rest, err := expandRange(name[j+1:])
	if err != nil {
		return nil, err
	}
	var items []string
	lo, hi := parts[0], parts[1]
	if a, err1 := strconv.Atoi(lo); err1 == nil {
		z, err2 := strconv.Atoi(hi)
		if err2 != nil || z < a {
			return nil, fmt.Errorf("bad range in %q", name)
		}
		if z-a >= maxRangeHosts {
			return nil, fmt.Errorf("ranges in %q make more than %d hosts", name, maxRangeHosts)
		}
		width := 0
		if len(lo) > 1 && lo[0] == '0' {
			width = len(lo)
		}
		for k := a; k <= z; k += step {
			items = append(items, fmt.Sprintf("%0*d", width, k))
		}
	} else if len(lo) == 1 && len(hi) == 1 && lo[0] <= hi[0] && isLetter(lo[0]) && isLetter(hi[0]) {
		for c := int(lo[0]); c <= int(hi[0]); c += step {
			items = append(items, string(rune(c)))
		}
	} else {
		return nil, fmt.Errorf("bad range in %q", name)
	}
	if len(items)*len(rest) > maxRangeHosts {
		return nil, fmt.Errorf("ranges in %q make more than %d hosts", name, maxRangeHosts)
	}
	var out []string
	for _, it := range items {
		for _, r := range rest {
			out = append(out, name[:i]+it+r)
		}
	}
	return out, nil
}

// maxRangeHosts bounds the hosts one name with ranges expands to.
const maxRangeHosts = 100000

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func parseInventoryYAML(data []byte) (*Inventory, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInventory, err)
	}
	b := newBuilder()
	if len(doc.Content) == 0 {
		return b.build()
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: line %d: want a mapping of groups", ErrInventory, root.Line)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if err := yamlGroup(b, "", root.Content[i].Value, root.Content[i+1]); err != nil {
			return nil, err
		}
	}
	return b.build()
}

func yamlGroup(b *builder, parent, name string, n *yaml.Node) error {
	if parent != "" {
		b.child(parent, name)
	} else {
		b.group(name)
	}
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!null" || n.Value == "") {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%w: line %d: group %s: want hosts, vars or children", ErrInventory, n.Line, name)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if val.Kind == yaml.ScalarNode && val.Tag == "!!null" {
			continue
		}
		switch key.Value {
		case "hosts":
			if val.Kind != yaml.MappingNode {
				return fmt.Errorf("%w: line %d: %s.hosts: want a mapping of host names", ErrInventory, val.Line, name)
			}
			for j := 0; j+1 < len(val.Content); j += 2 {
				vars, err := yamlVars(val.Content[j+1])
				if err != nil {
					return err
				}
				names, err := expandRange(val.Content[j].Value)
				if err != nil {
					return fmt.Errorf("%w: line %d: %v", ErrInventory, val.Content[j].Line, err)
				}
				for _, h := range names {
					if err := CheckHost(h); err != nil {
						return fmt.Errorf("%w: line %d: %v", ErrInventory, val.Content[j].Line, err)
					}
					b.host(name, h, vars)
				}
			}
		case "vars":
			vars, err := yamlVars(val)
			if err != nil {
				return err
			}
			for k, v := range vars {
				b.setGroupVar(name, k, v)
			}
		case "children":
			if val.Kind != yaml.MappingNode {
				return fmt.Errorf("%w: line %d: %s.children: want a mapping of groups", ErrInventory, val.Line, name)
			}
			for j := 0; j+1 < len(val.Content); j += 2 {
				if err := yamlGroup(b, name, val.Content[j].Value, val.Content[j+1]); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("%w: line %d: group %s: unknown key %q (want hosts, vars or children)", ErrInventory, key.Line, name, key.Value)
		}
	}
	return nil
}

// yamlVars reads a mapping of variables; scalars keep their text, other
// values their YAML flow form.
func yamlVars(n *yaml.Node) (map[string]string, error) {
	vars := map[string]string{}
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!null" || n.Value == "") {
		return vars, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: line %d: want a mapping of variables", ErrInventory, n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		v := n.Content[i+1]
		if v.Kind == yaml.ScalarNode {
			vars[n.Content[i].Value] = v.Value
			continue
		}
		c := *v
		c.Style = yaml.FlowStyle
		out, err := yaml.Marshal(&c)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrInventory, v.Line, err)
		}
		vars[n.Content[i].Value] = strings.TrimSpace(string(out))
	}
	return vars, nil
}

// Limit returns the hosts that pattern selects, in inventory order, as
// Ansible's --limit does: names of groups or hosts, shell globs (web*),
// joined by ':' or ',' for a union, with '&' before a name for an
// intersection and '!' for an exclusion ("web:&prod:!web3"). "" and "all"
// select every host. A name or glob that matches no group or host is an
// error matching ErrInventory.
func (inv *Inventory) Limit(pattern string) ([]InventoryHost, error) {
	if pattern == "" {
		pattern = "all"
	}
	sel := map[string]bool{}
	var and, not []map[string]bool
	for _, term := range strings.FieldsFunc(pattern, func(r rune) bool { return r == ':' || r == ',' }) {
		op := byte(0)
		if term[0] == '&' || term[0] == '!' {
			op, term = term[0], term[1:]
		}
		m, err := inv.match(term)
		if err != nil {
			return nil, err
		}
		switch op {
		case '&':
			and = append(and, m)
		case '!':
			not = append(not, m)
		default:
			for h := range m {
				sel[h] = true
			}
		}
	}
	var out []InventoryHost
next:
	for _, h := range inv.Hosts {
		if !sel[h.Name] {
			continue
		}
		for _, m := range and {
			if !m[h.Name] {
				continue next
			}
		}
		for _, m := range not {
			if m[h.Name] {
				continue next
			}
		}
		out = append(out, h)
	}
	return out, nil
}

// match returns the hosts one term names: a group, a host, or a glob over
// both.
func (inv *Inventory) match(term string) (map[string]bool, error) {
	m := map[string]bool{}
	if term == "*" {
		term = "all"
	}
	add := func(g string) {
		for _, h := range inv.Groups[g] {
			m[h] = true
		}
	}
	if _, ok := inv.Groups[term]; ok {
		add(term)
		return m, nil
	}
	for _, h := range inv.Hosts {
		if h.Name == term {
			m[h.Name] = true
			return m, nil
		}
	}
	if strings.ContainsAny(term, "*?[") {
		if _, err := path.Match(term, ""); err != nil {
			return nil, fmt.Errorf("%w: limit %q: %v", ErrInventory, term, err)
		}
		for g := range inv.Groups {
			if ok, _ := path.Match(term, g); ok {
				add(g)
			}
		}
		for _, h := range inv.Hosts {
			if ok, _ := path.Match(term, h.Name); ok {
				m[h.Name] = true
			}
		}
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: limit %q matches no group or host", ErrInventory, term)
	}
	return m, nil
}
