package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-project/bulwark/internal/api"
	"github.com/bulwark-project/bulwark/internal/consolelog"
	"github.com/bulwark-project/bulwark/internal/ipsstage"
	"github.com/bulwark-project/bulwark/internal/ipssvc"
	"github.com/bulwark-project/bulwark/internal/mirror"
	"github.com/bulwark-project/bulwark/internal/mirrorsvc"
	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/store"
)

// EVE log bounds: 16 MiB files, DefaultKeep of them.
const eveMaxSize = 16 << 20

// netSecurity is the switch's inspection and mirror stages with their
// control planes (issue 15).
type netSecurity struct {
	stage   *ipsstage.Stage
	ips     *ipssvc.Service
	alerts  *ipssvc.Alerts
	eve     *consolelog.Log
	evePath string
	mirror  *mirror.Manager
	mirrors *mirrorsvc.Service
}

// startNetSecurity builds the IPS stage (rules from STATE/ips/rules, the
// policy from the store, alerts to STATE/logs/ips-eve.json) and the
// mirror stage (pcaps in STATE/mirror) and installs them in sw.
func startNetSecurity(ctx context.Context, cfg Config, sw *netsw.Switch, st *store.Store, log *slog.Logger) (*netSecurity, func(), error) {
	n := &netSecurity{evePath: filepath.Join(cfg.StateDir, "logs", "ips-eve.json")}
	eve, err := consolelog.Open(n.evePath, eveMaxSize, consolelog.DefaultKeep)
	if err != nil {
		return nil, nil, fmt.Errorf("ips: %w", err)
	}
	n.eve = eve
	n.alerts = ipssvc.NewAlerts(eve, log)
	n.stage = ipsstage.New(ipsstage.Options{Log: log, Sink: n.alerts.Sink})
	closeAll := func() {
		n.stage.Close()
		eve.Close()
	}
	start := time.Now()
	n.ips, err = ipssvc.New(ctx, n.stage, st, filepath.Join(cfg.StateDir, "ips", "rules"), log)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	log.Info("ips: ready", "ms", time.Since(start).Milliseconds())
	n.mirror, err = mirror.NewManager(sw, filepath.Join(cfg.StateDir, "mirror"), log)
	if err != nil {
		n.ips.Close()
		closeAll()
		return nil, nil, fmt.Errorf("mirror: %w", err)
	}
	n.mirrors, err = mirrorsvc.New(ctx, n.mirror, st, log)
	if err != nil {
		n.mirror.Close()
		n.ips.Close()
		closeAll()
		return nil, nil, err
	}
	sw.SetInspectStages(n.stage)
	sw.SetMirrorStages(n.mirror)
	return n, func() {
		sw.SetInspectStages()
		sw.SetMirrorStages()
		if err := n.mirror.Close(); err != nil {
			log.Error("mirror: close", "err", err)
		}
		n.ips.Close()
		closeAll()
	}, nil
}

// wire gives the API server the IPS and mirror routes and sends alert
// notices to the monitoring events.
func (n *netSecurity) wire(srv *api.Server) {
	srv.SetIPS(&api.IPS{Svc: n.ips, EVEPath: n.evePath})
	srv.SetMirror(n.mirrors)
	n.alerts.SetNotify(func(x ipssvc.Notice) {
		srv.RecordEvent(api.MonitorEvent{Time: time.Now().UTC(), VM: x.VM, Kind: x.Kind, Summary: x.Summary, Evidence: x.Evidence, Scan: "ips"})
	})
}

// metrics is the IPS's Prometheus collector.
func (n *netSecurity) metrics() prometheus.Collector {
	return netSecurityMetrics{ipssvc.NewMetrics(n.stage), mirrorsvc.NewMetrics(n.mirrors)}
}

// netSecurityMetrics is the IPS's and the mirror sessions' collectors as one.
type netSecurityMetrics struct {
	ips    *ipssvc.Metrics
	mirror *mirrorsvc.Metrics
}

func (m netSecurityMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.ips.Describe(ch)
	m.mirror.Describe(ch)
}

func (m netSecurityMetrics) Collect(ch chan<- prometheus.Metric) {
	m.ips.Collect(ch)
	m.mirror.Collect(ch)
}
