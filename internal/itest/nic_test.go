package itest

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// TestNICDatagram: a NIC connected to a Unix datagram socket delivers the
// guest's Ethernet frames there, one frame per datagram (the framing the
// virtual switch will use).
func TestNICDatagram(t *testing.T) {
	h := newHost(t)
	sock := filepath.Join(h.dir, "sw.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The hypervisor runs as the VM's own uid and must be able to send here.
	os.Chmod(sock, 0o666)
	const mac = "52:54:00:aa:bb:01"
	var v vm.VM
	h.mustCLI(&v, "vm", "create", "nic", "--kernel", filepath.Join(imgDir, "vmlinuz"),
		"--initrd", filepath.Join(imgDir, "initrd.img"), "--memory", "256",
		"--cmdline", "bulwark.hostname=nic bulwark.ip=10.77.0.2/24",
		"--nic", "mac="+strings.ToUpper(mac)+",socket="+sock)
	if len(v.Spec.NICs) != 1 || v.Spec.NICs[0].MAC != mac {
		t.Fatalf("NIC not stored normalised: %+v", v.Spec.NICs)
	}
	h.mustCLI(&v, "vm", "start", "nic")

	// Bringing eth0 up with an address makes the guest kernel send frames
	// (IPv6 neighbour/router solicitations, ARP): wait for one from its MAC.
	buf := make([]byte, 65536)
	deadline := time.Now().Add(90 * time.Second)
	for {
		conn.SetReadDeadline(deadline)
		n, _, err := conn.ReadFromUnix(buf)
		if err != nil {
			t.Fatalf("no frame from the guest's NIC: %v\nconsole:\n%s", err, h.consoleLog("nic"))
		}
		if n < 14 {
			t.Fatalf("datagram of %d bytes is not an Ethernet frame", n)
		}
		if net.HardwareAddr(buf[6:12]).String() == mac {
			t.Logf("frame of %d bytes, ethertype %#04x, from %s", n, uint16(buf[12])<<8|uint16(buf[13]), mac)
			break
		}
	}
}
