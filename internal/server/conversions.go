package server

import (
	"net"
	"net/http"

	"steward/internal/analytics"
)

// Convert records a conversion (analytics.GoalRegistration, GoalSubscription) of the
// request's visitor on Steward's own site: the request's host, when it is one of the
// configured sites (else nothing is recorded). Only the day's visitor hash and the
// minute are kept, where the visitor's signals allow (analytics.Service.Convert); a
// failure is logged, and never fails the member's flow.
func (s *Services) Convert(r *http.Request, goal string) {
	if s.Analytics == nil {
		return
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if !s.Analytics.KnownSite(host) {
		return
	}
	if _, err := s.Analytics.Convert(r.Context(), host, goal, analytics.Client{IP: s.ClientIP(r), UserAgent: r.UserAgent()},
		StatisticsSignals(r)); err != nil {
		s.Log.ErrorContext(r.Context(), "analytics: conversion", "goal", goal, "err", err)
	}
}
