package policy

import "time"

// Observer hears about every activation and every refused policy version,
// for metrics. Its methods are called synchronously and must not block.
type Observer interface {
	// Activated reports that source (the name of a bundle, or "dir")
	// brought a new policy revision into service.
	Activated(source, revision string)
	// Failed reports that source delivered nothing usable: a download,
	// signature, parse, compile or test failure, configuration errors in
	// the data, a size limit. The previous policy keeps serving. A version
	// that was read and refused is an ErrRefused (errors.Is); a source that
	// could not be read or reached is not.
	Failed(source string, err error)
}

// Status is the state of the policy and of its sources, for GET /v1/status.
type Status struct {
	// Active is the policy serving decisions; null when there is none (and
	// every decision is a deny with policy_error).
	Active *Info `json:"active"`
	// Sources are the configured policy sources, in configuration order.
	Sources []SourceStatus `json:"sources"`
}

// Source states.
const (
	// StateLoading: nothing has been read from the source yet.
	StateLoading = "loading"
	// StateActive: the source's last content is part of the active policy.
	StateActive = "active"
	// StateWaiting: the source's content was read and verified; the first
	// activation waits for the other bundles.
	StateWaiting = "waiting"
	// StateFailed: the source's last content (or attempt to read it) was
	// refused; what it delivered before keeps serving.
	StateFailed = "failed"
)

// SourceStatus is the state of one policy source.
type SourceStatus struct {
	// Name is the bundle's name, or "dir" for policy.dir.
	Name string `json:"name"`
	// Kind is "dir" or "bundle".
	Kind string `json:"kind"`
	// Location is the directory, bundle path or bundle URL.
	Location string `json:"location"`
	// State is one of loading, active, waiting or failed.
	State string `json:"state"`
	// Revision is the bundle's manifest revision, if it declares one, of
	// the last content accepted from the source; for a directory, the
	// revision of its last accepted content.
	Revision string `json:"revision,omitempty"`
	// LastSuccess is when content from the source was last accepted.
	LastSuccess *time.Time `json:"last_success,omitempty"`
	// LastChecked is when the source was last read or polled without error
	// (a 304 Not Modified included).
	LastChecked *time.Time `json:"last_checked,omitempty"`
	// LastError is the last failure's message, kept after later successes;
	// compare LastErrorAt with LastSuccess, or read State.
	LastError string `json:"last_error,omitempty"`
	// LastErrorAt is when it happened.
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	// ConfigErrors are the configuration errors of the source's last
	// version (data.tokenguard.config_errors) while it is refused for them;
	// empty once the source delivers a version that is accepted.
	ConfigErrors []ConfigError `json:"config_errors,omitempty"`
}
