package auth_test

import (
	"fmt"

	"github.com/bulwark-project/bulwark/internal/auth"
)

// The worked example of the package documentation.
func ExamplePolicy_Explain() {
	user := func(name, role, path string, prop bool) auth.Entry {
		return auth.Entry{Subject: auth.Subject{User: name}, Role: role, Path: path, Propagate: prop}
	}
	group := func(name, role, path string, prop bool) auth.Entry {
		return auth.Entry{Subject: auth.Subject{Group: name}, Role: role, Path: path, Propagate: prop}
	}
	entries := []auth.Entry{
		group("ops", auth.RoleVMOperator, "/", true),
		group("ops", auth.RoleNoAccess, "/vms/secret", true),
		user("alice", auth.RoleAdministrator, "/vms/secret", true),
		user("bob", auth.RoleReadOnly, "/vms", false),
		group("net", auth.RoleNetworkAdmin, "/networks", true),
	}
	groups := map[string][]string{"alice": {"ops"}, "bob": {"ops", "net"}}
	p, err := auth.Compile(nil, entries, groups, nil)
	if err != nil {
		panic(err)
	}
	for _, q := range []struct {
		user string
		priv auth.Privilege
		path string
	}{
		{"alice", auth.VMPowerOn, "/vms/web1"},
		{"bob", auth.VMPowerOn, "/vms"},
		{"bob", auth.VMPowerOn, "/vms/web1"},
		{"bob", auth.VMAudit, "/vms/secret"},
		{"alice", auth.VMDelete, "/vms/secret"},
		{"bob", auth.NetworkConfig, "/networks/n1"},
		{"bob", auth.VMPowerOn, "/networks/n1"},
		{"carol", auth.VMAudit, "/"},
	} {
		d := p.Explain(q.user, q.priv, q.path)
		fmt.Printf("%-5s %-14s %-12s %-5v %s %s\n", q.user, q.priv, q.path, d.Allowed, d.Reason, d.DecidedAt)
	}
	// Output:
	// alice VM.PowerOn     /vms/web1    true  granted /
	// bob   VM.PowerOn     /vms         false privilege not in the applicable roles /vms
	// bob   VM.PowerOn     /vms/web1    true  granted /
	// bob   VM.Audit       /vms/secret  false masked by NoAccess /vms/secret
	// alice VM.Delete      /vms/secret  true  granted /vms/secret
	// bob   Network.Config /networks/n1 true  granted /networks
	// bob   VM.PowerOn     /networks/n1 false privilege not in the applicable roles /networks
	// carol VM.Audit       /            false no permission entry applies
}

// Delegation: a user with Permission.Manage may hand on only what they hold.
func ExamplePolicy_CanGrant() {
	delegate := auth.NewRole("VMDelegate")
	for _, priv := range []auth.Privilege{auth.VMAudit, auth.VMPowerOn, auth.VMPowerOff, auth.PermissionManage} {
		if err := delegate.Add(priv); err != nil {
			panic(err)
		}
	}
	p, err := auth.Compile([]*auth.Role{delegate}, []auth.Entry{
		{Subject: auth.Subject{User: "alice"}, Role: "VMDelegate", Path: "/vms", Propagate: true},
	}, nil, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(p.CanGrant("alice", auth.Entry{Subject: auth.Subject{User: "bob"}, Role: auth.RoleAdministrator, Path: "/vms/web1"}))
	fmt.Println(p.CanGrant("alice", auth.Entry{Subject: auth.Subject{User: "bob"}, Role: auth.RoleReadOnly, Path: "/networks/n1"}))
	fmt.Println(p.CanGrant("alice", auth.Entry{Subject: auth.Subject{User: "alice"}, Role: auth.RoleNoAccess, Path: "/vms/web1"}))
	fmt.Println(p.CanGrant("alice", auth.Entry{Subject: auth.Subject{User: "bob"}, Role: "VMDelegate", Path: "/vms/web1", Propagate: true}))
	// Output:
	// forbidden: alice lacks Attestation.Config,Attestation.Read,Audit.Read,Datastore.Allocate,Datastore.Audit,Firewall.Config,Firewall.Read,IPS.Config,IPS.Read,Monitor.Read,Monitor.Respond,Network.Attach,Network.Audit,Network.Config,Network.Mirror,Pool.Allocate,Pool.Audit,Pool.Config,Role.Manage,User.Manage,VM.Config,VM.Config.Disk,VM.Console,VM.Console.Takeover,VM.Create,VM.Delete,VM.HostPaths,VM.Snapshot on /vms/web1, which role Administrator would grant
	// forbidden: alice lacks Permission.Manage on /networks/n1
	// forbidden: alice cannot change their own permissions
	// <nil>
}
