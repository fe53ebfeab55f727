package api

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/safetensors"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/data"
)

// getModel sends a global model version as safetensors, with PyTorch's
// tensor names and layouts (see package nn).
func (s *Server) getModel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	sr, err := s.st.Run(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	version := -1
	if q := r.URL.Query().Get("version"); q != "" && q != "latest" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 0 {
			s.fail(w, r, errorf(http.StatusBadRequest, "version %q is not a non-negative integer or \"latest\"", q))
			return
		}
		version = n
	}
	m, err := s.st.Model(r.Context(), id, version)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var cfg coord.Config
	if err := json.Unmarshal(sr.Config, &cfg); err != nil {
		s.fail(w, r, err)
		return
	}
	net, err := coord.NewModel(cfg)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	weights, err := store.DecodeFloat32s(m.Weights, net.NumParams())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	tensors := make([]safetensors.Tensor, len(net.Tensors))
	for i, t := range net.Tensors {
		tensors[i] = safetensors.Tensor{Name: t.Name, Shape: t.Shape, Data: t.View(weights)}
	}
	meta := map[string]string{"format": "pt", "qflare_run": id, "model": cfg.Model, "dataset": cfg.Dataset,
		"version": strconv.Itoa(m.Version), "round": strconv.Itoa(m.Round),
		"test_accuracy": strconv.FormatFloat(m.TestAccuracy, 'f', 6, 64),
		"input":         "NCHW float32, standardised per channel (see README)"}
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, tensors, meta); err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-v%d.safetensors"`, id, m.Version))
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.Write(buf.Bytes())
}

// getSlice sends a client its data slice (QDS1, see package data),
// gzip-compressed when the client accepts it. It needs the run's join token
// and a client id the run assigned.
func (s *Server) getSlice(w http.ResponseWriter, r *http.Request) {
	run, err := s.c.Run(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	if !tokenOK(q.Get("token"), run.Token()) && !s.isAdmin(r) {
		writeError(w, http.StatusForbidden, "wrong or missing join token")
		return
	}
	set, err := run.Slice(q.Get("client"))
	if err != nil {
		s.fail(w, r, errorf(http.StatusNotFound, "%v", err))
		return
	}
	w.Header().Set("Content-Type", "application/x-qflare-dataset")
	w.Header().Set("Cache-Control", "no-store")
	if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		data.WriteSet(w, set)
		return
	}
	w.Header().Set("Content-Encoding", "gzip")
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	data.WriteSet(zw, set)
	zw.Close()
}
