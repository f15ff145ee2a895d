package netsw

import (
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
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
func openPacket(ifname string) (portIO, error) {
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
	// Ask whether each frame's checksum is still to be computed (offload).
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("auxdata: %w", err)
	}
	fio, err := newFileIO(fd, "uplink:"+ifname)
	if err != nil {
		return nil, err
	}
	return &packetIO{fileIO: fio, oob: make([]byte, unix.CmsgSpace(int(auxdataSize)))}, nil
}

// packetIO is a raw packet socket on an interface. Frames the host sends
// through an interface with checksum offload arrive with the TCP/UDP
// checksum not yet computed; the switch computes it, since a guest would
// drop the frame as corrupt.
type packetIO struct {
	*fileIO
	oob []byte
	f   packet.Frame
}

// auxdataSize is sizeof(struct tpacket_auxdata).
const auxdataSize = 20

func (p *packetIO) read(buf []byte) (int, error) {
	var (
		n, oobn int
		rerr    error
	)
	err := p.raw.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, p.oob, 0)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, rerr
	}
	if csumNotReady(p.oob[:oobn]) && packet.Parse(buf[:n], &p.f) == packet.OK {
		packet.FillChecksum(&p.f)
	}
	return n, nil
}

func csumNotReady(oob []byte) bool {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA && len(m.Data) >= 4 {
			status := uint32(m.Data[0]) | uint32(m.Data[1])<<8 | uint32(m.Data[2])<<16 | uint32(m.Data[3])<<24
			return status&unix.TP_STATUS_CSUMNOTREADY != 0
		}
	}
	return false
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
