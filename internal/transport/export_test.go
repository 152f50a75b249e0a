package transport

import "time"

// SetKeepAliveInterval changes the keepalive interval for connections dialled
// afterwards and returns a func restoring it. Tests only; not concurrency-safe.
func SetKeepAliveInterval(d time.Duration) (restore func()) {
	old := keepAliveInterval
	keepAliveInterval = d
	return func() { keepAliveInterval = old }
}
