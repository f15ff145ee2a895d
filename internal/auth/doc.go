// Package auth decides who may do what to which object: the privilege
// catalogue, roles, permission entries on object paths, and their resolution
// into allow or deny. It is a pure core in the manner of etcd raft: no HTTP,
// no database, no clock. Callers load users, groups, roles and entries from
// wherever they live, Compile them into an immutable Policy, and ask it.
//
// # Model
//
// A Privilege is one fine-grained right ("VM.PowerOn"); Catalogue lists them
// all. A Role is a named set of privileges; a custom role starts empty.
// Built-in roles (NoAccess, ReadOnly, VMOperator, NetworkAdmin,
// SecurityAuditor, Administrator) cannot be edited or shadowed. An Entry
// gives a Subject (a user or a group) a role on an object path such as "/",
// "/vms", "/vms/web1", "/pools/prod" or "/networks/n1", and with Propagate on
// every object below it too. API routes name the privilege and the object path
// they need; the Policy answers Allowed(user, privilege, path).
//
// # Resolution
//
// Following Proxmox VE, the effective privileges of a user on a path come from
// exactly one path: the deepest of the path and its ancestors that holds an
// entry applying to the user. An entry applies on its own path always, and on
// paths below it only if it propagates. At that path:
//
//  1. if the user has entries of their own there, their roles win and group
//     entries at that path are ignored;
//  2. otherwise the roles of all the user's groups there are united;
//  3. if NoAccess is among the winning roles, the result is empty.
//
// A deeper path replaces, never adds to, what is inherited from above. An
// entry with an empty custom role still counts: it replaces inherited roles
// with nothing. A disabled user has no privileges. Anything not granted is
// denied, and so are unknown privileges and invalid paths.
//
// # Worked example
//
// alice is in group ops; bob is in ops and net. Entries:
//
//	group ops    VMOperator     /               propagate
//	group ops    NoAccess       /vms/secret     propagate
//	user  alice  Administrator  /vms/secret     propagate
//	user  bob    ReadOnly       /vms            this path only
//	group net    NetworkAdmin   /networks       propagate
//
// Then:
//
//	alice VM.PowerOn      /vms/web1    yes  nothing on /vms/web1 or (for alice) /vms; ops' VMOperator on /
//	bob   VM.PowerOn      /vms         no   bob's own ReadOnly on /vms wins there
//	bob   VM.PowerOn      /vms/web1    yes  bob's /vms entry does not propagate; ops' VMOperator on /
//	bob   VM.Audit        /vms/secret  no   ops' NoAccess masks, also below /vms/secret
//	alice VM.Delete       /vms/secret  yes  alice's user entry beats ops' NoAccess at the same path
//	bob   Network.Config  /networks/n1 yes  net's NetworkAdmin on /networks
//	bob   VM.PowerOn      /networks/n1 no   /networks replaces the VMOperator inherited from /
//	carol anything        anywhere     no   no entry applies
//
// ExamplePolicy_Explain runs this example.
//
// # Delegation without escalation
//
// Permission.Manage on a path lets a user add and remove entries there, but
// CanGrant and CanRevoke hold them to what they have: a grant may only carry
// privileges the actor holds on every object it reaches, a removal may only
// re-expose privileges the actor holds, and nobody may add or remove entries
// for themselves or for a group they belong to.
//
// # Performance
//
// Entries are indexed by path and aggregated per subject at Compile, so an
// access check is a walk from the path up to "/" (at most MaxPathDepth+1
// steps) doing one map lookup per step, plus one per group of the user at
// steps that hold entries. It does not allocate; see BenchmarkAllowed10k.
package auth
