package main

import (
	"fmt"
	"io"
)

func printReport(w io.Writer, r results) {
	m := r.Machine
	fmt.Fprintf(w, "# Console broker benchmark\n\n")
	fmt.Fprintf(w, "%d CPUs (GOMAXPROCS %d), %s, Linux %s, %s; load before %s, after %s; %.0f s\n\n",
		m.NProc, m.GOMAXPROCS, m.CPUModel, m.Kernel, m.Go, m.LoadBefore, m.LoadAfter, r.WallSeconds)

	l := r.Latency
	fmt.Fprintf(w, "## Keystroke-to-echo latency (µs), %d samples each, %d alternating blocks\n\n", l.Direct.N, r.Config.Blocks)
	fmt.Fprintf(w, "| path | median | p90 | p99 | min | max |\n|---|---:|---:|---:|---:|---:|\n")
	row := func(name string, d dist) {
		fmt.Fprintf(w, "| %s | %.1f | %.1f | %.1f | %.1f | %.1f |\n", name, d.MedianUS, d.P90US, d.P99US, d.MinUS, d.MaxUS)
	}
	row("direct: echo socket", l.Direct)
	path := "broker: client → WebSocket → broker → serial socket → echo → pump → broker → WebSocket → client"
	if l.ConsoleLog {
		path += " (pump writes the console log too)"
	}
	row(path, l.Broker)
	fmt.Fprintf(w, "| **added by the path** | **%.1f** | %.1f | **%.1f** | | |\n\n", l.AddedMedianUS, l.AddedP90US, l.AddedP99US)
	fmt.Fprintf(w, "Goal: under 1000 µs added. Recording on (asciicast, %d bytes written); clipboard policy allow.\n\n", l.RecordingBytes)

	fmt.Fprintf(w, "## Output throughput, %d consoles, %d-byte chunks, %.1f s each (MB = 10^6 bytes)\n\n", r.Config.Consoles, r.Config.Chunk, r.Config.Seconds)
	if r.Config.Yield {
		fmt.Fprintf(w, "Producers yield the CPU after each chunk (-yield).\n\n")
	} else {
		fmt.Fprintf(w, "Producers call broker.Output in a loop without pause.\n\n")
	}
	fmt.Fprintf(w, "Peer: raw Unix-socket copy, one stream: **%.0f MB/s**.\n\n", r.Raw.MBps)
	fmt.Fprintf(w, "| run | clients not reading | produced MB/s | delivered MB/s | delivered / raw | per reading client MB/s (min / median / max) | delivered fraction (min / median) | drop markers | dropped (markers) MB | unaccounted bytes | recordings MB (files at the 64 MiB cap) | peak RSS MiB (base) | max heap MiB | CPU cores used (steal) |\n")
	fmt.Fprintf(w, "|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---|---|---:|---|\n")
	for _, t := range r.Throughput {
		fmt.Fprintf(w, "| %d | %d of %d | %.0f | %.0f | %.2f | %.2f / %.2f / %.2f | %.3f / %.3f | %d | %.0f | %d | %.0f (%d of %d) | %.0f (%.0f) | %.0f | %.2f (%.2f) |\n",
			t.Run, t.Stalled, t.Consoles, t.ProducedMBps, t.DeliveredMBps, t.DeliveredVsRaw,
			t.PerClient.MinMBps, t.PerClient.MedianMBps, t.PerClient.MaxMBps,
			t.PerClient.MinFraction, t.PerClient.MedianFraction,
			t.Markers, float64(t.MarkerDropped)/mb, t.Unaccounted,
			float64(t.RecordingBytes)/mb, t.RecordingsCapped, t.Recordings,
			t.PeakRSSMiB, t.BaseRSSMiB, t.PeakHeapMiB, t.CPUCores, t.StealCores)
	}
	if len(r.Throughput) > 0 {
		fmt.Fprintf(w, "\nOutput queued per client is bounded at 256 KiB (%.1f MiB for %d clients); past it output is dropped and the client gets a marker. Delivered counts output bytes received by the reading clients while the producers ran (markers excluded); the fraction and the marker totals are after a drain of at most 10 s.\n",
			r.Throughput[0].QueueBoundMiB, r.Throughput[0].Consoles)
	}
}
