// Package vm holds the VM model: the spec an operator submits, its validation,
// the lifecycle state machine and the manager that drives a hypervisor backend.
//
// Validation and the state machine are pure (no I/O beyond an injected stat
// function) so they are tested exhaustively; the manager is the edge that
// touches the store, processes and files.
package vm

import "time"

// Spec is the operator's definition of a VM. It is stored verbatim (as JSON) and
// is the only input the backend needs to launch the VM.
type Spec struct {
	Name      string `json:"name"`
	VCPUs     int    `json:"vcpus"`
	MemoryMiB int    `json:"memory_mib"`
	// Image names a registry image (STATE/images/NAME): at create it
	// supplies kernel, initrd, command line and, for a disk image, a root
	// disk; at every start the kernel and initrd are checked against the
	// image's manifest.
	Image   string `json:"image,omitempty"`
	Kernel  string `json:"kernel"`
	Initrd  string `json:"initrd,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
	Disks   []Disk `json:"disks,omitempty"`
	NICs    []NIC  `json:"nics,omitempty"`
	// Accel is "auto" (default), "kvm" or "tcg".
	Accel string `json:"accel,omitempty"`
	// Console is the remote-console policy; nil means the daemon's
	// defaults (one user at a time, clipboard denied, input not recorded).
	Console *ConsolePolicy `json:"console,omitempty"`
	// MonitorInterval is how often the monitor scans the running guest
	// from outside (Go duration, at least 1s); empty: on demand only.
	MonitorInterval string `json:"monitor_interval,omitempty"`
	// Pool is the resource pool the VM draws from (internal/pool); empty:
	// the root pool, "host".
	Pool string `json:"pool,omitempty"`
	// Resources are the VM's reservation, limit and shares in its pool;
	// nil: none reserved, its size as the limit, normal shares.
	Resources *Resources `json:"resources,omitempty"`
}

// ConsolePolicy is who may use a VM's console and how. Zero fields take
// the daemon's defaults.
type ConsolePolicy struct {
	// MaxSessions is how many users may hold the console at once (1..8).
	MaxSessions int `json:"max_sessions,omitempty"`
	// Clipboard is "deny" (default: pasted input refused) or "allow".
	Clipboard string `json:"clipboard,omitempty"`
	// RecordInput puts keystrokes in the recording too (they may hold
	// passwords, hence off by default).
	RecordInput bool `json:"record_input,omitempty"`
	// IdleTimeout and MaxDuration are Go durations ("15m", "8h").
	IdleTimeout string `json:"idle_timeout,omitempty"`
	MaxDuration string `json:"max_duration,omitempty"`
	// InputMaxKeys, InputBurst and InputRate tune what counts as typing
	// under clipboard deny: keys per message, burst of keys, keys/second.
	InputMaxKeys int     `json:"input_max_keys,omitempty"`
	InputBurst   int     `json:"input_burst,omitempty"`
	InputRate    float64 `json:"input_rate,omitempty"`
}

// Disk is given to the guest as virtio-blk: either a storage volume
// (Volume, "POOL/NAME", raw or qcow2 with its chain opened by the daemon)
// or a host path (Path: a raw image file or block device). Exactly one of
// the two is set.
type Disk struct {
	Path     string `json:"path,omitempty"`
	Volume   string `json:"volume,omitempty"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// NIC is a virtio-net device. Until the virtual switch exists a NIC is either
// unattached or connected to a Unix datagram socket (one Ethernet frame per
// datagram, QEMU's -netdev dgram framing).
type NIC struct {
	MAC string `json:"mac,omitempty"`
	// Network puts the NIC on a port of Bulwark's virtual switch, where
	// anti-spoofing binds MAC and IP and the security groups apply.
	Network string `json:"network,omitempty"`
	// IP is the NIC's IPv4 address on the network (bound by anti-spoofing).
	IP string `json:"ip,omitempty"`
	// Groups are the security groups the NIC belongs to, in evaluation order.
	Groups []string `json:"groups,omitempty"`
	// Socket is refused: it used to send frames to any Unix datagram
	// socket of the host, around the switch and its firewall, and the
	// daemon connects NIC sockets as root. It stays in the type so that a
	// stored definition that has it gets a clear error, not silence.
	// Without Network the NIC is unattached (frames dropped).
	Socket string `json:"socket,omitempty"`
	// Rate limits the NIC's traffic in the switch (token buckets, both
	// directions); nil: unlimited.
	Rate *NICRate `json:"rate,omitempty"`
}

// VM is a spec plus its runtime record, as stored and as reported by the API.
type VM struct {
	Spec    Spec      `json:"spec"`
	State   State     `json:"state"`
	Reason  string    `json:"reason,omitempty"`
	Runtime Runtime   `json:"runtime"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Runtime is what the daemon must remember about a running VM to re-attach to
// it after a restart.
type Runtime struct {
	ID        int64  `json:"id"`
	PID       int    `json:"pid,omitempty"`
	StartTime uint64 `json:"start_time,omitempty"` // /proc/PID/stat field 22, guards against PID reuse
	Accel     string `json:"accel,omitempty"`
	AccelWhy  string `json:"accel_reason,omitempty"`
	RunDir    string `json:"run_dir,omitempty"`
	UID       int    `json:"uid,omitempty"` // host uid the hypervisor process runs as
}
