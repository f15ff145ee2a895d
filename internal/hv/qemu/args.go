// Package qemu is the hypervisor backend that runs each VM in a hardened QEMU
// process: -nodefaults, a seccomp sandbox with every optional syscall class
// denied, the microvm machine with virtio-mmio devices only and no option
// ROMs, guest RAM in a shared file of the VM's private run directory, and an
// unprivileged uid per VM. The daemon talks to it over QMP and reads the
// serial console, both on Unix sockets in the run directory.
package qemu

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Args is the resolved input to the QEMU command line. Paths of files the
// daemon opened itself are /proc/self/fd/N or /dev/fdset/N, so the
// unprivileged QEMU needs no access to their directories.
type Args struct {
	Name      string
	Accel     string // "kvm" or "tcg"
	VCPUs     int
	MemoryMiB int
	MemPath   string // guest RAM backing file (pre-created 0600)
	Kernel    string
	Initrd    string
	Cmdline   string
	TSCkHz    int // TCG only: host TSC rate passed as tsc_early_khz (0: none)
	// BIOS is the firmware QEMU loads (-bios): /proc/self/fd/N of the file
	// the daemon measured; "" leaves it to QEMU's own lookup.
	BIOS string
	// QMP and the serial console: a listening socket the daemon made
	// (QMPFD/ConsoleFD > 0, what the backend uses) or a path QEMU binds
	// itself (benchmarks that run QEMU without the daemon).
	QMPSocket     string
	ConsoleSocket string
	QMPFD         int
	ConsoleFD     int
	Disks         []DiskArg
	// DiskLimits, when any is set, put every disk behind a throttle
	// filter node of one throttle group (throttle.go): the limits hold
	// for all of the VM's disks together. All zero: no group, no filter
	// nodes, the command line is as it was before limits existed.
	DiskLimits ThrottleLimits
	NICs       []NICArg
	FDSets     []FDSet
}

// DiskArg is one virtio-blk device: its top image file and, for a qcow2
// top, the backing chain below it. Every layer is an explicit -blockdev
// node over a file the daemon opened, and the bottom qcow2 layer gets
// "backing": null, so QEMU never opens a name it read from an image
// header (the classic way to make a hypervisor read /etc/shadow).
type DiskArg struct {
	Path     string // top layer, e.g. /dev/fdset/N
	Format   string // "raw" (also when empty) or "qcow2"
	ReadOnly bool
	// Backing is the chain below a qcow2 top, base first (its last
	// element is the top's direct backing). Backing layers are read-only.
	Backing []DiskLayer
}

// DiskLayer is one read-only backing file of a disk.
type DiskLayer struct {
	Path   string
	Format string // "raw" (also when empty) or "qcow2"
}

// NICArg is one virtio-net device on a Unix datagram socket: either a
// descriptor of a socket the daemon bound and connected (FD > 0, what the
// backend uses), or a pair of paths QEMU binds and sends to.
type NICArg struct {
	MAC    string
	FD     int
	Local  string // socket QEMU binds
	Remote string // socket QEMU sends to
}

// FDSet passes an inherited descriptor to QEMU with -add-fd.
type FDSet struct {
	FD, Set int
}

// Sandbox denies every optional class of the QEMU seccomp filter. spawn and
// elevateprivileges deny fork/exec and set*id: QEMU is started unprivileged
// by the daemon, so it never needs -runas (which would need setuid).
const Sandbox = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

// Machine is microvm: no PCI, no legacy devices beyond the serial port, no
// firmware option ROMs; virtio-mmio devices are found through ACPI.
const Machine = "microvm,acpi=on,x-option-roms=off,isa-serial=on,memory-backend=mem0"

// BaseCmdline is prepended to the operator's kernel command line.
const BaseCmdline = "console=ttyS0"

// Build returns the argv (without the program name).
func (a Args) Build() []string {
	argv := []string{
		"-name", "guest=" + a.Name + ",debug-threads=on",
		"-nodefaults", "-no-user-config", "-nographic",
		"-sandbox", Sandbox,
		"-machine", Machine,
		"-accel", a.Accel,
		"-smp", strconv.Itoa(a.VCPUs),
		"-m", strconv.Itoa(a.MemoryMiB) + "M",
		"-object", fmt.Sprintf("memory-backend-file,id=mem0,size=%dM,mem-path=%s,share=on", a.MemoryMiB, a.MemPath),
		"-global", "virtio-mmio.force-legacy=false",
	}
	if a.Accel == "kvm" {
		argv = append(argv, "-cpu", "host")
	}
	for _, f := range a.FDSets {
		argv = append(argv, "-add-fd", fmt.Sprintf("fd=%d,set=%d", f.FD, f.Set))
	}
	if a.BIOS != "" {
		argv = append(argv, "-bios", a.BIOS)
	}
	argv = append(argv, "-kernel", a.Kernel)
	if a.Initrd != "" {
		argv = append(argv, "-initrd", a.Initrd)
	}
	argv = append(argv, "-append", a.kernelCmdline())
	argv = append(argv,
		"-chardev", chardevSocket("qmp", a.QMPFD, a.QMPSocket),
		"-mon", "chardev=qmp,mode=control",
		"-chardev", chardevSocket("serial0", a.ConsoleFD, a.ConsoleSocket),
		"-serial", "chardev:serial0",
	)
	throttled := !a.DiskLimits.IsZero()
	if throttled {
		argv = append(argv, "-object", throttleGroupObject(a.DiskLimits))
	}
	for i, d := range a.Disks {
		argv = append(argv, diskArgs(i, d, throttled)...)
	}
	for i, n := range a.NICs {
		netdev := fmt.Sprintf("dgram,id=net%d,local.type=unix,local.path=%s,remote.type=unix,remote.path=%s", i, n.Local, n.Remote)
		if n.FD > 0 {
			// A connected socket: QEMU refuses a remote with local.type=fd.
			netdev = fmt.Sprintf("dgram,id=net%d,local.type=fd,local.str=%d", i, n.FD)
		}
		argv = append(argv, "-netdev", netdev,
			"-device", fmt.Sprintf("virtio-net-device,netdev=net%d,mac=%s", i, n.MAC))
	}
	return argv
}

// diskArgs returns disk i's -blockdev nodes, base layer first, and its
// -device. With throttled, the device is attached to a throttle filter
// node (diskNt) over the disk's top node (diskN) in the VM's throttle
// group, so that every guest request is counted once, before any format
// driver or backing layer sees it.
func diskArgs(i int, d DiskArg, throttled bool) []string {
	var argv []string
	backing := "" // node name of the layer below, "" for none
	for j, l := range d.Backing {
		node := fmt.Sprintf("disk%db%d", i, j)
		argv = append(argv, blockdevs(node, l.Path, l.Format, true, backing)...)
		backing = node
	}
	node := fmt.Sprintf("disk%d", i)
	argv = append(argv, blockdevs(node, d.Path, d.Format, d.ReadOnly, backing)...)
	drive := node
	if throttled {
		drive = throttleNode(i)
		argv = append(argv, "-blockdev", throttleBlockdev(drive, node, d.ReadOnly))
	}
	return append(argv, "-device", fmt.Sprintf("virtio-blk-device,drive=%s", drive))
}

// blockdevs returns the two -blockdev options of one image layer: the
// file node (NODEf) and the format node (NODE) on it. A qcow2 node is
// written as JSON, the only syntax in which "backing": null (open no
// backing file, whatever the header says) can be expressed; its backing
// is the node below or null.
func blockdevs(node, path, format string, readOnly bool, backing string) []string {
	ro := "off"
	if readOnly {
		ro = "on"
	}
	file := fmt.Sprintf("driver=file,node-name=%sf,filename=%s,read-only=%s", node, path, ro)
	if format != "qcow2" {
		return []string{"-blockdev", file,
			"-blockdev", fmt.Sprintf("driver=raw,node-name=%s,file=%sf,read-only=%s", node, node, ro)}
	}
	var back any // JSON null
	if backing != "" {
		back = backing
	}
	j, _ := json.Marshal(struct {
		Driver   string `json:"driver"`
		NodeName string `json:"node-name"`
		File     string `json:"file"`
		ReadOnly bool   `json:"read-only"`
		Backing  any    `json:"backing"`
	}{"qcow2", node, node + "f", readOnly, back})
	return []string{"-blockdev", file, "-blockdev", string(j)}
}

func chardevSocket(id string, fd int, path string) string {
	if fd > 0 {
		return fmt.Sprintf("socket,id=%s,fd=%d,server=on,wait=off", id, fd)
	}
	return "socket,id=" + id + ",path=" + path + ",server=on,wait=off"
}

// kernelCmdline prepends what the host must set (the serial console, and
// under TCG the TSC rate) unless the operator already set it.
func (a Args) kernelCmdline() string {
	var pre []string
	if !strings.Contains(" "+a.Cmdline, " console=") {
		pre = append(pre, BaseCmdline)
	}
	if a.Accel == "tcg" && a.TSCkHz > 0 && !strings.Contains(" "+a.Cmdline, " tsc_early_khz=") {
		pre = append(pre, "tsc_early_khz="+strconv.Itoa(a.TSCkHz))
	}
	// Under TCG on a loaded host the clocksource watchdog sees an emulated
	// TSC drift and marks it unstable; the guest then switches clocksource
	// and flips static keys, which rewrites kernel text after boot (false
	// "kernel text modified" findings for introspection). The emulated TSC
	// follows the host clock, so it is reliable.
	if a.Accel == "tcg" && !strings.Contains(" "+a.Cmdline, " tsc=") {
		pre = append(pre, "tsc=reliable")
	}
	return strings.Join(append(pre, strings.Fields(a.Cmdline)...), " ")
}
