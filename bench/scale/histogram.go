package main

import (
	"context"
	"math"

	dto "github.com/prometheus/client_model/go"

	"github.com/ocm-overlay/ocm/internal/metrics"
)

// serverTimes are the server's own share of the candidate round trip, read
// from its /metrics histograms after the join phase: the wait for the
// state goroutine and the decision there, p50 and p99 in ms.
type serverTimes struct {
	queueP50, queueP99, decisionP50, decisionP99 float64
}

// scrapeServerTimes reads ocm_candidate_{queue,decision}_seconds.
func (p *serverProc) scrapeServerTimes(ctx context.Context) (serverTimes, error) {
	f, err := metrics.Scrape(ctx, "http://"+p.http+"/metrics")
	if err != nil {
		return serverTimes{}, err
	}
	var t serverTimes
	t.queueP50, t.queueP99 = quantileMs(f["ocm_candidate_queue_seconds"], 0.5), quantileMs(f["ocm_candidate_queue_seconds"], 0.99)
	t.decisionP50, t.decisionP99 = quantileMs(f["ocm_candidate_decision_seconds"], 0.5),
		quantileMs(f["ocm_candidate_decision_seconds"], 0.99)
	return t, nil
}

// quantileMs estimates the q quantile of a histogram in ms, interpolating
// linearly inside the bucket it falls in (as Prometheus'
// histogram_quantile does); -1 if the server has no such histogram or no
// sample.
func quantileMs(mf *dto.MetricFamily, q float64) float64 {
	if mf == nil || len(mf.GetMetric()) == 0 || mf.GetMetric()[0].GetHistogram() == nil {
		return -1
	}
	h := mf.GetMetric()[0].GetHistogram()
	n := float64(h.GetSampleCount())
	if n == 0 {
		return -1
	}
	rank := q * n
	lower, below := 0.0, 0.0
	for _, b := range h.GetBucket() {
		upper, count := b.GetUpperBound(), float64(b.GetCumulativeCount())
		if count >= rank {
			if math.IsInf(upper, 1) {
				return lower * 1000
			}
			return (lower + (upper-lower)*(rank-below)/math.Max(count-below, 1)) * 1000
		}
		lower, below = upper, count
	}
	return lower * 1000
}
