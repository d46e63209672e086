//go:build !linux

package server

import "context"

// parker parks nothing here: every connection keeps its goroutine.
type parker struct{}

func newParker(*Server) (*parker, error)  { return nil, nil }
func (p *parker) park(*session) bool      { return false }
func (p *parker) wake(*session)           {}
func (p *parker) run(ctx context.Context) { <-ctx.Done() }
