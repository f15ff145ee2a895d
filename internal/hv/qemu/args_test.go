package qemu

import (
	"slices"
	"strings"
	"testing"
)

func testArgs() Args {
	return Args{
		Name:          "web-1",
		Accel:         "kvm",
		VCPUs:         2,
		MemoryMiB:     512,
		MemPath:       "/run/bulwark/vms/web-1/mem",
		Kernel:        "/proc/self/fd/3",
		Initrd:        "/proc/self/fd/4",
		Cmdline:       "root=/dev/vda quiet",
		QMPSocket:     "/run/bulwark/vms/web-1/qmp.sock",
		ConsoleSocket: "/run/bulwark/vms/web-1/console.sock",
		Disks:         []DiskArg{{Path: "/dev/fdset/1"}, {Path: "/dev/fdset/2", ReadOnly: true}},
		NICs: []NICArg{
			{MAC: "52:54:00:00:00:01", Local: "/run/bulwark/vms/web-1/net0.sock", Remote: "/run/bulwark/sw0.sock"},
			{MAC: "52:54:00:00:00:02", Local: "/run/bulwark/vms/web-1/net1.sock", Remote: "/run/bulwark/vms/web-1/net1.unattached"},
		},
		FDSets: []FDSet{{FD: 5, Set: 1}, {FD: 6, Set: 2}},
	}
}

// values returns every argument that follows flag.
func values(argv []string, flag string) []string {
	var out []string
	for i := 0; i+1 < len(argv); i++ {
		if argv[i] == flag {
			out = append(out, argv[i+1])
		}
	}
	return out
}

// one returns the single value of flag, failing if it is absent or repeated.
func one(t *testing.T, argv []string, flag string) string {
	t.Helper()
	v := values(argv, flag)
	if len(v) != 1 {
		t.Fatalf("%s given %d times (%q), want once", flag, len(v), v)
	}
	return v[0]
}

// opts splits a QEMU option string on commas into its items.
func opts(s string) []string { return strings.Split(s, ",") }

func TestSandbox(t *testing.T) {
	items := opts(Sandbox)
	if items[0] != "on" {
		t.Errorf("Sandbox %q does not start with on", Sandbox)
	}
	for _, class := range []string{"obsolete", "elevateprivileges", "spawn", "resourcecontrol"} {
		if !slices.Contains(items, class+"=deny") {
			t.Errorf("Sandbox %q does not deny %s", Sandbox, class)
		}
	}
	for _, it := range items[1:] {
		if !strings.HasSuffix(it, "=deny") {
			t.Errorf("Sandbox item %q allows something", it)
		}
	}
}

func TestBuildHardening(t *testing.T) {
	for _, accel := range []string{"kvm", "tcg"} {
		t.Run(accel, func(t *testing.T) {
			a := testArgs()
			a.Accel = accel
			argv := a.Build()

			for _, flag := range []string{"-nodefaults", "-no-user-config", "-nographic"} {
				if !slices.Contains(argv, flag) {
					t.Errorf("argv lacks %s", flag)
				}
			}
			if got := one(t, argv, "-sandbox"); got != Sandbox {
				t.Errorf("-sandbox %q, want %q", got, Sandbox)
			}
			m := one(t, argv, "-machine")
			if m != Machine {
				t.Errorf("-machine %q, want %q", m, Machine)
			}
			mi := opts(m)
			if mi[0] != "microvm" || !slices.Contains(mi, "x-option-roms=off") || !slices.Contains(mi, "memory-backend=mem0") {
				t.Errorf("-machine %q: want microvm, x-option-roms=off, memory-backend=mem0", m)
			}
			if got := one(t, argv, "-accel"); got != accel {
				t.Errorf("-accel %q, want %q", got, accel)
			}
			if got := one(t, argv, "-smp"); got != "2" {
				t.Errorf("-smp %q", got)
			}
			if got := one(t, argv, "-m"); got != "512M" {
				t.Errorf("-m %q", got)
			}
			obj := opts(one(t, argv, "-object"))
			if obj[0] != "memory-backend-file" || !slices.Contains(obj, "id=mem0") || !slices.Contains(obj, "size=512M") ||
				!slices.Contains(obj, "share=on") || !slices.Contains(obj, "mem-path="+a.MemPath) {
				t.Errorf("-object %q: want memory-backend-file id=mem0 size=512M share=on mem-path=%s", obj, a.MemPath)
			}
			cpu := values(argv, "-cpu")
			if accel == "kvm" && !slices.Equal(cpu, []string{"host"}) {
				t.Errorf("kvm: -cpu %q, want host", cpu)
			}
			if accel != "kvm" && len(cpu) != 0 {
				t.Errorf("%s: -cpu %q, want none (host needs KVM)", accel, cpu)
			}

			// Nothing that would change uid, detach, or open a listener.
			for _, bad := range []string{"-runas", "-daemonize", "-chroot", "-vnc", "-spice", "-gdb", "-s", "-qmp", "-monitor", "-incoming", "-device-help"} {
				if slices.Contains(argv, bad) {
					t.Errorf("argv contains %s", bad)
				}
			}
			for _, arg := range argv {
				for _, bad := range []string{"tcp:", "udp:", "telnet", "host=", "port=", "inet", "websocket", "vhost", "type=user", "user,", "hostfwd", "smb="} {
					if strings.Contains(arg, bad) {
						t.Errorf("argument %q contains %q: network listener or host service", arg, bad)
					}
				}
			}

			// Control and console: Unix sockets in the run directory only.
			chardevs := values(argv, "-chardev")
			want := []string{
				"socket,id=qmp,path=" + a.QMPSocket + ",server=on,wait=off",
				"socket,id=serial0,path=" + a.ConsoleSocket + ",server=on,wait=off",
			}
			if !slices.Equal(chardevs, want) {
				t.Errorf("-chardev %q, want %q", chardevs, want)
			}
			if got := one(t, argv, "-mon"); got != "chardev=qmp,mode=control" {
				t.Errorf("-mon %q", got)
			}
			if got := one(t, argv, "-serial"); got != "chardev:serial0" {
				t.Errorf("-serial %q", got)
			}
			if got := one(t, argv, "-kernel"); got != a.Kernel {
				t.Errorf("-kernel %q", got)
			}
			if got := one(t, argv, "-initrd"); got != a.Initrd {
				t.Errorf("-initrd %q", got)
			}
		})
	}
}

func TestBuildDisks(t *testing.T) {
	a := testArgs()
	argv := a.Build()
	if got, want := values(argv, "-add-fd"), []string{"fd=5,set=1", "fd=6,set=2"}; !slices.Equal(got, want) {
		t.Errorf("-add-fd %q, want %q", got, want)
	}
	wantBlock := []string{
		"driver=file,node-name=disk0f,filename=/dev/fdset/1,read-only=off",
		"driver=raw,node-name=disk0,file=disk0f,read-only=off",
		"driver=file,node-name=disk1f,filename=/dev/fdset/2,read-only=on",
		"driver=raw,node-name=disk1,file=disk1f,read-only=on",
	}
	if got := values(argv, "-blockdev"); !slices.Equal(got, wantBlock) {
		t.Errorf("-blockdev\n got %q\nwant %q", got, wantBlock)
	}
	devs := values(argv, "-device")
	for _, d := range []string{"virtio-blk-device,drive=disk0", "virtio-blk-device,drive=disk1"} {
		if !slices.Contains(devs, d) {
			t.Errorf("-device %q missing from %q", d, devs)
		}
	}
	// A qcow2 disk: every layer an explicit node, the bottom qcow2 layer
	// with backing null, the raw base a leaf, backing layers read-only.
	a.Disks = []DiskArg{
		{Path: "/dev/fdset/1", Format: "qcow2"},
		{Path: "/dev/fdset/4", Format: "qcow2", Backing: []DiskLayer{{Path: "/dev/fdset/2", Format: "raw"}, {Path: "/dev/fdset/3", Format: "qcow2"}}},
	}
	wantChain := []string{
		"driver=file,node-name=disk0f,filename=/dev/fdset/1,read-only=off",
		`{"driver":"qcow2","node-name":"disk0","file":"disk0f","read-only":false,"backing":null}`,
		"driver=file,node-name=disk1b0f,filename=/dev/fdset/2,read-only=on",
		"driver=raw,node-name=disk1b0,file=disk1b0f,read-only=on",
		"driver=file,node-name=disk1b1f,filename=/dev/fdset/3,read-only=on",
		`{"driver":"qcow2","node-name":"disk1b1","file":"disk1b1f","read-only":true,"backing":"disk1b0"}`,
		"driver=file,node-name=disk1f,filename=/dev/fdset/4,read-only=off",
		`{"driver":"qcow2","node-name":"disk1","file":"disk1f","read-only":false,"backing":"disk1b1"}`,
	}
	if got := values(a.Build(), "-blockdev"); !slices.Equal(got, wantChain) {
		t.Errorf("-blockdev chain\n got %q\nwant %q", got, wantChain)
	}
	// -add-fd must come before the blockdevs that open /dev/fdset/N.
	if i, j := slices.Index(argv, "-add-fd"), slices.Index(argv, "-blockdev"); i < 0 || j < 0 || i > j {
		t.Errorf("-add-fd at %d, -blockdev at %d", i, j)
	}
	for _, d := range devs {
		if strings.Contains(d, "pci") {
			t.Errorf("PCI device %q on microvm", d)
		}
	}
}

func TestBuildNICs(t *testing.T) {
	a := testArgs()
	argv := a.Build()
	wantNet := []string{
		"dgram,id=net0,local.type=unix,local.path=/run/bulwark/vms/web-1/net0.sock,remote.type=unix,remote.path=/run/bulwark/sw0.sock",
		"dgram,id=net1,local.type=unix,local.path=/run/bulwark/vms/web-1/net1.sock,remote.type=unix,remote.path=/run/bulwark/vms/web-1/net1.unattached",
	}
	if got := values(argv, "-netdev"); !slices.Equal(got, wantNet) {
		t.Errorf("-netdev\n got %q\nwant %q", got, wantNet)
	}
	devs := values(argv, "-device")
	for _, d := range []string{"virtio-net-device,netdev=net0,mac=52:54:00:00:00:01", "virtio-net-device,netdev=net1,mac=52:54:00:00:00:02"} {
		if !slices.Contains(devs, d) {
			t.Errorf("-device %q missing from %q", d, devs)
		}
	}
}

func TestBuildMinimal(t *testing.T) {
	a := Args{Name: "a", Accel: "tcg", VCPUs: 1, MemoryMiB: 32, MemPath: "/r/mem", Kernel: "/proc/self/fd/3",
		QMPSocket: "/r/qmp.sock", ConsoleSocket: "/r/console.sock"}
	argv := a.Build()
	for _, flag := range []string{"-initrd", "-add-fd", "-blockdev", "-netdev", "-device", "-cpu"} {
		if slices.Contains(argv, flag) {
			t.Errorf("minimal argv contains %s: %q", flag, argv)
		}
	}
	if got := one(t, argv, "-append"); got != "console=ttyS0 tsc=reliable" {
		t.Errorf("-append %q, want console=ttyS0 tsc=reliable", got)
	}
	if got := one(t, argv, "-name"); got != "guest=a,debug-threads=on" {
		t.Errorf("-name %q", got)
	}
	// Every flag takes its value as the next argument: no flag is glued to
	// an operator-controlled value.
	for i, arg := range argv {
		if strings.HasPrefix(arg, "-") && i+1 < len(argv) && strings.HasPrefix(argv[i+1], "-") &&
			!slices.Contains([]string{"-nodefaults", "-no-user-config", "-nographic"}, arg) {
			t.Errorf("flag %s followed by flag %s", arg, argv[i+1])
		}
	}
}

func TestKernelCmdline(t *testing.T) {
	tests := []struct{ user, want string }{
		{"", "console=ttyS0"},
		{"quiet", "console=ttyS0 quiet"},
		{"  quiet  ", "console=ttyS0 quiet"},
		{"console=hvc0", "console=hvc0"},
		{"quiet console=ttyS1,115200", "quiet console=ttyS1,115200"},
		{"root=/dev/vda console=ttyS0 console=tty0", "root=/dev/vda console=ttyS0 console=tty0"},
		// Not a console= parameter: the default is still added.
		{"xconsole=1", "console=ttyS0 xconsole=1"},
		{"netconsole=@/,@10.0.0.1/", "console=ttyS0 netconsole=@/,@10.0.0.1/"},
		{"init=/bin/console=", "console=ttyS0 init=/bin/console="},
	}
	for _, tc := range tests {
		if got := (Args{Cmdline: tc.user}).kernelCmdline(); got != tc.want {
			t.Errorf("kernelCmdline(%q) = %q, want %q", tc.user, got, tc.want)
		}
		a := testArgs()
		a.Cmdline = tc.user
		if got := one(t, a.Build(), "-append"); got != tc.want {
			t.Errorf("Build with cmdline %q: -append %q, want %q", tc.user, got, tc.want)
		}
	}
}

// Under TCG the host TSC rate is passed to the guest unless the operator set
// one; under KVM, or with no rate known, nothing is added.
func TestKernelCmdlineTSC(t *testing.T) {
	tests := []struct {
		accel string
		khz   int
		user  string
		want  string
	}{
		{"tcg", 2_400_000, "", "console=ttyS0 tsc_early_khz=2400000 tsc=reliable"},
		{"tcg", 2_400_000, "quiet", "console=ttyS0 tsc_early_khz=2400000 tsc=reliable quiet"},
		{"tcg", 2_400_000, "console=hvc0", "tsc_early_khz=2400000 tsc=reliable console=hvc0"},
		{"tcg", 2_400_000, "tsc_early_khz=1000000", "console=ttyS0 tsc=reliable tsc_early_khz=1000000"},
		{"tcg", 2_400_000, "quiet  tsc_early_khz=1", "console=ttyS0 tsc=reliable quiet tsc_early_khz=1"},
		{"tcg", 2_400_000, "tsc=unstable", "console=ttyS0 tsc_early_khz=2400000 tsc=unstable"},
		{"tcg", 0, "quiet", "console=ttyS0 tsc=reliable quiet"},
		{"tcg", -1, "", "console=ttyS0 tsc=reliable"},
		{"kvm", 2_400_000, "quiet", "console=ttyS0 quiet"},
		{"kvm", 2_400_000, "", "console=ttyS0"},
	}
	for _, tc := range tests {
		a := testArgs()
		a.Accel, a.TSCkHz, a.Cmdline = tc.accel, tc.khz, tc.user
		if got := one(t, a.Build(), "-append"); got != tc.want {
			t.Errorf("%s, %d kHz, cmdline %q: -append %q, want %q", tc.accel, tc.khz, tc.user, got, tc.want)
		}
	}
}

// TestBuildDescriptors: what the backend actually launches with. QMP and
// the console are listening descriptors, NICs connected datagram
// descriptors (QEMU refuses a remote beside local.type=fd), guest RAM the
// memfd on descriptor 3; no path of the run directory appears at all.
func TestBuildDescriptors(t *testing.T) {
	a := testArgs()
	a.MemPath = "/proc/self/fd/3"
	a.QMPSocket, a.ConsoleSocket, a.QMPFD, a.ConsoleFD = "", "", 4, 5
	a.NICs = []NICArg{{MAC: "52:54:00:00:00:01", FD: 6}, {MAC: "52:54:00:00:00:02", FD: 7}}
	argv := a.Build()
	if got := values(argv, "-chardev"); !slices.Equal(got, []string{
		"socket,id=qmp,fd=4,server=on,wait=off", "socket,id=serial0,fd=5,server=on,wait=off"}) {
		t.Errorf("-chardev %q", got)
	}
	if got := values(argv, "-netdev"); !slices.Equal(got, []string{
		"dgram,id=net0,local.type=fd,local.str=6", "dgram,id=net1,local.type=fd,local.str=7"}) {
		t.Errorf("-netdev %q", got)
	}
	if !strings.Contains(strings.Join(values(argv, "-object"), " "), "mem-path=/proc/self/fd/3,share=on") {
		t.Errorf("-object %q", values(argv, "-object"))
	}
	if j := strings.Join(argv, " "); strings.Contains(j, "/run/bulwark") {
		t.Errorf("a run-directory path reaches QEMU: %s", j)
	}
}

// TestBuildBIOS: the BIOS, when given, is passed once with -bios; without
// it QEMU's own lookup applies.
func TestBuildBIOS(t *testing.T) {
	a := testArgs()
	if v := values(a.Build(), "-bios"); len(v) != 0 {
		t.Errorf("-bios %q without a BIOS", v)
	}
	a.BIOS = "/proc/self/fd/9"
	if got := one(t, a.Build(), "-bios"); got != a.BIOS {
		t.Errorf("-bios %q, want %q", got, a.BIOS)
	}
}
