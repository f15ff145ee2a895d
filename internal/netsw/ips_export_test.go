package netsw

import (
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
)

// IPSBench exposes the pipeline benchmark's switch (pipeline_bench_test.go)
// to ips_bench_test.go, which is in package netsw_test because it imports
// internal/ipsstage (which imports netsw). It drives frames through the
// pipeline on the caller's goroutine, as the readers would.
type IPSBench struct {
	pb      *pipelineBench
	f       packet.Frame
	scratch []byte
}

// NewIPSBench returns the pipeline benchmark's switch with n established
// client connections to the server's port 443 (client i is ClientFlow(i),
// source port 10000+i/8; ISNs 1000 and 5000, handshake done).
func NewIPSBench(tb testing.TB, n int) *IPSBench {
	pb := newPipelineBench(tb)
	pb.established(tb, n)
	return &IPSBench{pb: pb, scratch: make([]byte, 0, packet.MaxFrame)}
}

func (x *IPSBench) Switch() *Switch                  { return x.pb.sw }
func (x *IPSBench) ClientFlow(i int) packettest.Flow { return x.pb.clientFlow(i) }
func (x *IPSBench) ServerFrames() int                { return x.pb.serverSink.frames }
func (x *IPSBench) ClientPort() *Port                { return x.pb.client }
func (x *IPSBench) ServerPort() *Port                { return x.pb.server }
func (x *IPSBench) FromClient(frame []byte) {
	x.scratch = x.pb.sw.process(x.pb.client, frame, &x.f, x.scratch[:0])
}
func (x *IPSBench) FromServer(frame []byte) {
	x.scratch = x.pb.sw.process(x.pb.server, frame, &x.f, x.scratch[:0])
}
func (x *IPSBench) Drops(p *Port) map[string]uint64 { return p.status().Drops }
