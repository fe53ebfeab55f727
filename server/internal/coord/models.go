package coord

import (
	"sync"

	"github.com/qflare/qflare/shared/wire"
)

// recentVersions is how many global versions are kept in memory as bases of
// downlink deltas; a client holding an older one gets the whole model.
const recentVersions = 8

// models holds a run's recent global versions and their encoded frames.
// Each frame is encoded once: the whole model of a version by whoever asks
// first (the round closer, off the loop, for a new version), and a delta
// from a base version by the first connection writer that sends it. Safe
// for concurrent use; the weights it holds are never modified.
type models struct {
	sp *spec

	mu       sync.Mutex
	versions map[int64]*version
}

// version is one global model version.
type version struct {
	v      int64
	w      []float32
	full   lazyFrame
	deltas map[int64]*lazyFrame // by base version; guarded by models.mu
}

// lazyFrame is a frame encoded on first use.
type lazyFrame struct {
	once sync.Once
	b    []byte
	err  error
}

func newModels(sp *spec) *models { return &models{sp: sp, versions: map[int64]*version{}} }

// add makes w version v and forgets versions older than recentVersions.
func (m *models) add(v int64, w []float32) *version {
	ver := &version{v: v, w: w, deltas: map[int64]*lazyFrame{}}
	m.put(ver)
	return ver
}

// put registers ver (built off the loop, its frame already encoded) and
// forgets versions older than recentVersions.
func (m *models) put(ver *version) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.versions[ver.v] = ver
	for old := range m.versions {
		if old <= ver.v-recentVersions {
			delete(m.versions, old)
		}
	}
}

// get returns version v, or nil when it is not kept.
func (m *models) get(v int64) *version {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.versions[v]
}

// fullFrame returns version v's whole-model frame.
func (m *models) fullFrame(ver *version) ([]byte, error) {
	ver.full.once.Do(func() {
		p := m.sp.downPipe
		p.Delta = false
		ver.full.b, ver.full.err = m.encode(p, wire.KindModel, ver.v, ver.w, nil)
	})
	return ver.full.b, ver.full.err
}

// frame returns the frame that brings a client holding version base to
// version target: with a delta down codec, the change from base when base
// is kept and the change is smaller than the whole model; else the whole
// model.
func (m *models) frame(target *version, base int64) ([]byte, error) {
	full, err := m.fullFrame(target)
	if err != nil || !m.sp.downPipe.Delta || base <= 0 || base == target.v {
		return full, err
	}
	from := m.get(base)
	if from == nil {
		return full, nil
	}
	m.mu.Lock()
	lf := target.deltas[base]
	if lf == nil {
		lf = &lazyFrame{}
		target.deltas[base] = lf
	}
	m.mu.Unlock()
	lf.once.Do(func() {
		lf.b, lf.err = m.encode(m.sp.downPipe, wire.KindModelDelta, base, target.w, from.w)
	})
	if lf.err != nil || len(lf.b) >= len(full) {
		return full, nil
	}
	return lf.b, nil
}

// encode writes a model frame: w whole (base nil) or as a delta from base,
// whose version the header names.
func (m *models) encode(p wire.Pipeline, kind string, version int64, w, base []float32) ([]byte, error) {
	payload, err := wire.NewEncoder(p, m.sp.shapes, m.sp.cfg.Seed^uint64(version)).Encode(nil, w, base)
	if err != nil {
		return nil, err
	}
	return wire.AppendFrame(nil, &wire.FrameHeader{Kind: kind, Run: m.sp.id, ModelVersion: version,
		Codec: p.String(), Params: m.sp.numParams, Model: m.sp.modelName}, payload)
}
