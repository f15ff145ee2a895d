package auth

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Subject is who a permission entry is for: exactly one of User and Group is
// set.
type Subject struct {
	User  string
	Group string
}

func (s Subject) String() string {
	if s.Group != "" {
		return "group " + safe(s.Group)
	}
	return "user " + safe(s.User)
}

// Entry is one permission (ACL) entry: Subject holds Role on the object at
// Path, and on every object below it when Propagate is set. Propagate's zero
// value, false, is the narrower choice; a front end may default it to true as
// Proxmox does.
type Entry struct {
	Subject   Subject
	Role      string
	Path      string
	Propagate bool
}

func (e Entry) String() string {
	prop := ""
	if !e.Propagate {
		prop = " (this path only)"
	}
	return fmt.Sprintf("%s: %s on %s%s", e.Subject, safe(e.Role), safe(e.Path), prop)
}

// safe returns s as is when it is printable ASCII, quoted and escaped
// otherwise, so that names from requests cannot forge lines in logs.
func safe(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return strconv.QuoteToASCII(s)
		}
	}
	return s
}

// ErrInvalidEntry is wrapped by errors about malformed entries, subjects and
// group memberships.
var ErrInvalidEntry = errors.New("invalid permission entry")

// maxSubjectName bounds user and group names.
const maxSubjectName = 128

// ValidSubjectName checks a user or group name: 1 to 128 printable ASCII
// characters other than space. Names reach logs and UIs; excluding control
// characters, spaces and non-ASCII rules out look-alike and log-forging names.
func ValidSubjectName(name string) error {
	if name == "" || len(name) > maxSubjectName {
		return fmt.Errorf("name %q: must be 1 to %d characters", name, maxSubjectName)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("name %q: only printable ASCII characters other than space", name)
		}
	}
	return nil
}

func (s Subject) validate() error {
	switch {
	case s.User != "" && s.Group != "":
		return fmt.Errorf("%w: subject names both user %q and group %q", ErrInvalidEntry, s.User, s.Group)
	case s.User != "":
		if err := ValidSubjectName(s.User); err != nil {
			return fmt.Errorf("%w: user %w", ErrInvalidEntry, err)
		}
	case s.Group != "":
		if err := ValidSubjectName(s.Group); err != nil {
			return fmt.Errorf("%w: group %w", ErrInvalidEntry, err)
		}
	default:
		return fmt.Errorf("%w: subject names neither a user nor a group", ErrInvalidEntry)
	}
	return nil
}

// grant is what one subject's entries at one path give, for one mode: the
// path itself (here) or the paths below it (below, propagating entries only).
type grant struct {
	present bool // at least one entry; even an empty role replaces inherited ones
	mask    bool // NoAccess is among the roles
	privs   PrivSet
}

func (g *grant) add(r compiledRole) {
	g.present = true
	g.mask = g.mask || r.mask
	g.privs = g.privs.Union(r.privs)
}

// effective applies NoAccess masking.
func (g grant) effective() PrivSet {
	if g.mask {
		return PrivSet{}
	}
	return g.privs
}

type level struct{ here, below grant }

func (l level) pick(exact bool) grant {
	if exact {
		return l.here
	}
	return l.below
}

// node holds every entry on one path, aggregated per subject.
type node struct {
	users   map[string]level
	groups  map[string]level
	entries []Entry // as given, for CanRevoke
}

type compiledRole struct {
	privs PrivSet
	mask  bool // only the built-in NoAccess
}

// Policy is an immutable snapshot of roles, permission entries, group
// memberships and disabled users, indexed for access checks. All methods are
// safe for concurrent use; to change anything, Compile a new Policy and swap
// the pointer (for example with atomic.Pointer).
type Policy struct {
	roles    map[string]compiledRole
	byPath   map[string]*node
	paths    []string            // keys of byPath, sorted, for subtree scans
	memberOf map[string][]string // user -> groups, deduplicated and sorted
	members  map[string][]string // group -> users, sorted
	disabled map[string]bool
	// inherit maps an object to extra parents (inherit.go); inheritKeys
	// are its keys, sorted.
	inherit     map[string][]string
	inheritKeys []string
}

// Compile validates its inputs and builds a Policy. roles are the custom roles
// (the built-in ones are always present; passing unchanged copies of them is
// allowed, anything else under a built-in name is an error). groups maps each
// user to the groups they belong to; disabled marks users that hold no
// privileges at all, whatever their entries say.
//
// Compile copies everything it keeps: later changes to the arguments do not
// affect the Policy. Errors name the offending role or entry by index.
func Compile(roles []*Role, entries []Entry, groups map[string][]string, disabled map[string]bool) (*Policy, error) {
	p := &Policy{
		roles:    make(map[string]compiledRole, len(builtIn)+len(roles)),
		byPath:   make(map[string]*node),
		memberOf: make(map[string][]string, len(groups)),
		members:  make(map[string][]string),
		disabled: make(map[string]bool, len(disabled)),
	}
	for _, r := range BuiltInRoles() {
		p.roles[r.Name] = compiledRole{privs: r.Privs, mask: r.Name == RoleNoAccess}
	}
	if err := p.addRoles(roles); err != nil {
		return nil, err
	}
	if err := p.addGroups(groups); err != nil {
		return nil, err
	}
	for u, off := range disabled {
		if off {
			p.disabled[u] = true
		}
	}
	for i, e := range entries {
		if err := p.addEntry(e); err != nil {
			return nil, fmt.Errorf("entry %d (%s): %w", i, e, err)
		}
	}
	p.paths = make([]string, 0, len(p.byPath))
	for path := range p.byPath {
		p.paths = append(p.paths, path)
	}
	sort.Strings(p.paths)
	return p, nil
}

func (p *Policy) addRoles(roles []*Role) error {
	folded := make(map[string]string, len(roles)) // lower-case name -> name
	for i, r := range roles {
		if r == nil {
			return fmt.Errorf("role %d: %w: nil", i, ErrInvalidRole)
		}
		if want, ok := builtInPrivs(r.Name); ok && r.BuiltIn && r.Privs == want {
			continue // an unchanged copy of a built-in role
		}
		if r.BuiltIn {
			return fmt.Errorf("role %d %q: %w: marked built-in but is not an unchanged built-in role", i, r.Name, ErrInvalidRole)
		}
		if err := ValidRoleName(r.Name); err != nil {
			return fmt.Errorf("role %d: %w", i, err)
		}
		if r.Privs.bits&^allBits != 0 {
			return fmt.Errorf("role %d %q: %w", i, r.Name, ErrUnknownPrivilege)
		}
		if other, dup := folded[strings.ToLower(r.Name)]; dup {
			return fmt.Errorf("role %d %q: %w: name already used by role %q", i, r.Name, ErrInvalidRole, other)
		}
		folded[strings.ToLower(r.Name)] = r.Name
		p.roles[r.Name] = compiledRole{privs: r.Privs}
	}
	return nil
}

func (p *Policy) addGroups(groups map[string][]string) error {
	for u, gs := range groups {
		if err := ValidSubjectName(u); err != nil {
			return fmt.Errorf("%w: group membership: user %w", ErrInvalidEntry, err)
		}
		seen := make(map[string]bool, len(gs))
		list := make([]string, 0, len(gs))
		for _, g := range gs {
			if err := ValidSubjectName(g); err != nil {
				return fmt.Errorf("%w: group membership of user %q: group %w", ErrInvalidEntry, u, err)
			}
			if !seen[g] {
				seen[g] = true
				list = append(list, g)
				p.members[g] = append(p.members[g], u)
			}
		}
		sort.Strings(list)
		p.memberOf[u] = list
	}
	for _, us := range p.members {
		sort.Strings(us)
	}
	return nil
}

// validateEntry checks e against the grammar and the policy's roles.
func (p *Policy) validateEntry(e Entry) (compiledRole, error) {
	if err := e.Subject.validate(); err != nil {
		return compiledRole{}, err
	}
	r, ok := p.roles[e.Role]
	if !ok {
		return compiledRole{}, fmt.Errorf("%w %q", ErrUnknownRole, e.Role)
	}
	if _, err := CanonicalPath(e.Path); err != nil {
		return compiledRole{}, err
	}
	return r, nil
}

func (p *Policy) addEntry(e Entry) error {
	r, err := p.validateEntry(e)
	if err != nil {
		return err
	}
	n := p.byPath[e.Path]
	if n == nil {
		n = &node{}
		p.byPath[e.Path] = n
	}
	n.add(e, r)
	return nil
}

func (n *node) add(e Entry, r compiledRole) {
	m, key := &n.groups, e.Subject.Group
	if e.Subject.User != "" {
		m, key = &n.users, e.Subject.User
	}
	if *m == nil {
		*m = make(map[string]level)
	}
	l := (*m)[key]
	l.here.add(r) // every entry applies to its own path
	if e.Propagate {
		l.below.add(r)
	}
	(*m)[key] = l
	n.entries = append(n.entries, e)
}

// override replaces the node at one path during a what-if resolution.
type override struct {
	path string
	n    *node
}

// resolve returns the effective privileges of user on the canonical path
// target, where they were decided ("" when no entry applies), and whether
// NoAccess decided them.
//
// The walk goes from target up to "/" and stops at the first path holding an
// entry that applies: an entry applies on its own path always, and below it
// only when it propagates. At that path the user's own entries win; without
// any, the entries of all the user's groups are united. NoAccess among the
// winning entries empties the result. Cost: one map lookup per ancestor plus
// one per group of the user per ancestor holding entries; no allocation.
//
// With below set, the result is for an object directly under target that has
// no entries of its own, so target's non-propagating entries do not apply.
func (p *Policy) resolve(user, target string, below bool, ov *override) (privs PrivSet, at string, masked bool) {
	groups := p.memberOf[user]
	exactLen := len(target)
	if below {
		exactLen = -1
	}
	cur := target
	for {
		n := p.byPath[cur]
		if ov != nil && cur == ov.path {
			n = ov.n
		}
		if n != nil {
			exact := len(cur) == exactLen
			if l, ok := n.users[user]; ok {
				if g := l.pick(exact); g.present {
					return g.effective(), cur, g.mask
				}
			}
			if len(n.groups) > 0 {
				var acc grant
				for _, grp := range groups {
					if l, ok := n.groups[grp]; ok {
						if g := l.pick(exact); g.present {
							acc.present = true
							acc.mask = acc.mask || g.mask
							acc.privs = acc.privs.Union(g.privs)
						}
					}
				}
				if acc.present {
					return acc.effective(), cur, acc.mask
				}
			}
		}
		if cur == "/" {
			return PrivSet{}, "", false
		}
		cur = parentPath(cur)
	}
}

// Privileges returns the effective privileges of user on path: empty for a
// disabled user, an invalid path, or when no entry applies.
func (p *Policy) Privileges(user, path string) PrivSet {
	if p == nil || p.disabled[user] {
		return PrivSet{}
	}
	if reason, _ := checkPath(path); reason != "" {
		return PrivSet{}
	}
	privs, _, _ := p.resolveAll(user, path, false, nil)
	return privs
}

// Allowed reports whether user holds priv on path. It fails closed: an
// unknown privilege, an invalid path or a disabled user is a denial. It does
// not allocate.
func (p *Policy) Allowed(user string, priv Privilege, path string) bool {
	return p.Explain(user, priv, path).Allowed
}

// Reason is a short, constant explanation of a Decision, suitable as a
// counter key or audit field.
type Reason string

// Reasons for a Decision.
const (
	ReasonGranted          Reason = "granted"
	ReasonUnknownPrivilege Reason = "unknown privilege"
	ReasonInvalidPath      Reason = "invalid object path"
	ReasonDisabled         Reason = "user disabled"
	ReasonNoEntry          Reason = "no permission entry applies"
	ReasonNoAccess         Reason = "masked by NoAccess"
	ReasonNotInRole        Reason = "privilege not in the applicable roles"
)

// Decision is the outcome of one access check.
type Decision struct {
	Allowed bool
	Reason  Reason
	// DecidedAt is the path whose entries decided (target or an ancestor);
	// empty when no entry was consulted.
	DecidedAt string
}

// Explain is Allowed with the reason for the verdict, for audit logs and
// error messages. It does not allocate. A nil Policy denies everything.
func (p *Policy) Explain(user string, priv Privilege, path string) Decision {
	if p == nil {
		return Decision{Reason: ReasonNoEntry}
	}
	bit, ok := privBit[priv]
	if !ok {
		return Decision{Reason: ReasonUnknownPrivilege}
	}
	if reason, _ := checkPath(path); reason != "" {
		return Decision{Reason: ReasonInvalidPath}
	}
	if p.disabled[user] {
		return Decision{Reason: ReasonDisabled}
	}
	privs, at, masked := p.resolveAll(user, path, false, nil)
	switch {
	case at == "":
		return Decision{Reason: ReasonNoEntry}
	case masked:
		return Decision{Reason: ReasonNoAccess, DecidedAt: at}
	case privs.bits&(1<<bit) == 0:
		return Decision{Reason: ReasonNotInRole, DecidedAt: at}
	}
	return Decision{Allowed: true, Reason: ReasonGranted, DecidedAt: at}
}

// RolePrivileges returns the privileges of the named role in this policy.
func (p *Policy) RolePrivileges(name string) (PrivSet, bool) {
	r, ok := p.roles[name]
	return r.privs, ok
}
