package netsw

import (
	"slices"
	"sync"
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
)

// countStage counts what it sees and answers with verdict. It is used from
// one goroutine.
type countStage struct {
	name          string
	verdict       Verdict
	frames        int
	nonIP         int
	established   int
	lastIn, lastO *Port
}

func (c *countStage) Name() string { return c.name }

func (c *countStage) Process(fc *FrameContext) Verdict {
	c.frames++
	if !fc.Frame.IPValid {
		c.nonIP++
	}
	if fc.Flow != nil {
		c.established++
	}
	c.lastIn, c.lastO = fc.In, fc.Out
	return c.verdict
}

func TestStageOrder(t *testing.T) {
	pb := newPipelineBench(t)
	pb.sw.SetInspectStages(&countStage{name: "ips"})
	pb.sw.SetMirrorStages(&countStage{name: "mirror"})
	perFrame, perDest := pb.sw.StageNames()
	if want := []string{StageEgressRate, StageParse, StagePortSecurity}; !slices.Equal(perFrame, want) {
		t.Errorf("per-frame stages %v, want %v", perFrame, want)
	}
	if want := []string{StageFirewall, "ips", "mirror", StageIngressRate}; !slices.Equal(perDest, want) {
		t.Errorf("per-destination stages %v, want %v", perDest, want)
	}
}

// Established flows and non-IP frames go through the inspection and mirror
// stages; a drop there stops delivery and is counted at the sending VM
// with its reason; a mirror's verdict changes nothing.
func TestStagesSeeEveryDeliveredFrame(t *testing.T) {
	pb := newPipelineBench(t)
	frames := pb.established(t, 4)
	ips := &countStage{name: "ips"}
	mirror := &countStage{name: "mirror", verdict: Verdict{Action: Drop, Reason: packet.FWDrop}}
	pb.sw.SetInspectStages(ips)
	pb.sw.SetMirrorStages(mirror)

	var f packet.Frame
	var scratch []byte
	before := pb.serverSink.frames
	for _, fr := range frames {
		scratch = pb.sw.process(pb.client, fr, &f, scratch)
	}
	arp := packettest.ARP(pb.serverMAC, pb.clientMAC, packet.ARPRequest, pb.clientMAC, pb.clientFlow(0).Src, packet.MAC{}, pb.serverIP)
	scratch = pb.sw.process(pb.client, arp, &f, scratch)
	if got := pb.serverSink.frames - before; got != len(frames)+1 {
		t.Fatalf("%d of %d frames delivered (a mirror's drop must not count)", got, len(frames)+1)
	}
	if ips.frames != len(frames)+1 || ips.established != len(frames) || ips.nonIP != 1 {
		t.Errorf("inspection saw %d frames (%d established, %d non-IP), want %d (%d, 1)",
			ips.frames, ips.established, ips.nonIP, len(frames)+1, len(frames))
	}
	if ips.lastIn != pb.client || ips.lastO != pb.server {
		t.Errorf("inspection saw ports %v → %v", ips.lastIn.Name, ips.lastO.Name)
	}
	if mirror.frames != ips.frames {
		t.Errorf("mirror saw %d frames, inspection %d", mirror.frames, ips.frames)
	}

	// A dropping inspection stage: nothing delivered, the mirror sees
	// nothing, the drop is counted at the sender with the stage's reason.
	ips.verdict = Verdict{Action: Drop, Reason: packet.FWDrop}
	mirror.frames = 0
	drops := pb.client.status().Drops["fw_drop"]
	before = pb.serverSink.frames
	for _, fr := range frames {
		scratch = pb.sw.process(pb.client, fr, &f, scratch)
	}
	if got := pb.serverSink.frames - before; got != 0 {
		t.Errorf("%d frames delivered past a dropping stage", got)
	}
	if mirror.frames != 0 {
		t.Errorf("mirror saw %d dropped frames", mirror.frames)
	}
	if got := pb.client.status().Drops["fw_drop"] - drops; got != uint64(len(frames)) {
		t.Errorf("fw_drop counted %d times at the sender, want %d", got, len(frames))
	}

	// Consumed: stops without a drop.
	ips.verdict = Verdict{Action: Consumed}
	drops = pb.client.status().Drops["fw_drop"]
	scratch = pb.sw.process(pb.client, frames[0], &f, scratch)
	_ = scratch
	if pb.serverSink.frames != before || pb.client.status().Drops["fw_drop"] != drops {
		t.Error("a consumed frame was delivered or counted as a drop")
	}
}

// A plug-in stage keeps the established path free of allocations.
func TestPipelineWithStagesNoAllocs(t *testing.T) {
	pb := newPipelineBench(t)
	frames := pb.established(t, 100)
	ips := &countStage{name: "ips"}
	pb.sw.SetInspectStages(ips)
	pb.sw.SetMirrorStages(&countStage{name: "mirror"})
	var f packet.Frame
	scratch := make([]byte, 0, packet.MaxFrame)
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		scratch = pb.sw.process(pb.client, frames[i%len(frames)], &f, scratch[:0])
		i++
	})
	if allocs != 0 {
		t.Errorf("%v allocations per frame, want 0", allocs)
	}
	if ips.established == 0 {
		t.Fatal("inspection saw no established frame")
	}
}

// Replacing the stages while frames flow is safe (run with -race).
func TestSetStagesWhileForwarding(t *testing.T) {
	pb := newPipelineBench(t)
	frames := pb.established(t, 10)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 200 {
			if i%2 == 0 {
				pb.sw.SetInspectStages(passStage{})
			} else {
				pb.sw.SetInspectStages()
			}
		}
	}()
	var f packet.Frame
	var scratch []byte
	before := pb.serverSink.frames
	for i := range 2000 {
		scratch = pb.sw.process(pb.client, frames[i%len(frames)], &f, scratch[:0])
	}
	wg.Wait()
	if got := pb.serverSink.frames - before; got != 2000 {
		t.Errorf("%d of 2000 frames delivered", got)
	}
}

// passStage passes everything and has no state.
type passStage struct{}

func (passStage) Name() string                  { return "pass" }
func (passStage) Process(*FrameContext) Verdict { return Verdict{} }
