package netsw

import (
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// openUplinkLocked opens the network's uplink and starts its reader.
func (s *Switch) openUplinkLocked(n *network) error {
	var (
		io  portIO
		err error
	)
	switch n.cfg.Uplink.Kind {
	case "tap":
		io, err = openTap(n.cfg.Uplink.Interface)
	default:
		io, err = openPacket(n.cfg.Uplink.Interface)
	}
	if err != nil {
		return err
	}
	s.nextID++
	p := &Port{ID: s.nextID, Name: "uplink/" + n.cfg.Name, Kind: UplinkPort, net: n, io: io}
	s.byID[p.ID] = p
	n.uplink = p
	if err := s.recompileLocked(); err != nil {
		delete(s.byID, p.ID)
		io.close()
		return err
	}
	go s.readLoop(p)
	return nil
}

// fileIO moves frames over a non-blocking descriptor (TAP or packet socket).
type fileIO struct {
	f   *os.File
	raw syscall.RawConn
}

func newFileIO(fd int, name string) (*fileIO, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &fileIO{f: f, raw: raw}, nil
}

func (x *fileIO) read(buf []byte) (int, error) { return x.f.Read(buf) }

func (x *fileIO) write(frame []byte) error {
	var werr error
	err := x.raw.Write(func(fd uintptr) bool {
		_, werr = unix.Write(int(fd), frame)
		return true // drop rather than wait when the queue is full
	})
	if err != nil {
		return err
	}
	return werr
}

func (x *fileIO) close() error { return x.f.Close() }

// openPacket binds a raw AF_PACKET socket to an existing interface.
func openPacket(ifname string) (*fileIO, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	proto := htons(unix.ETH_P_ALL)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind %s: %w", ifname, err)
	}
	// Promiscuous: the uplink carries frames for every VM MAC.
	mreq := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("promiscuous %s: %w", ifname, err)
	}
	// Frames the switch itself sends out must not come back in.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ignore outgoing: %w", err)
	}
	return newFileIO(fd, "uplink:"+ifname)
}

// openTap creates (or attaches to) a TAP device without packet info headers.
func openTap(ifname string) (*fileIO, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ifr, err := unix.NewIfreq(ifname)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", ifname, err)
	}
	return newFileIO(fd, "tap:"+ifname)
}

// htons converts to network byte order; every platform Bulwark supports
// (amd64, arm64) is little-endian.
func htons(v uint16) uint16 { return v<<8 | v>>8 }
