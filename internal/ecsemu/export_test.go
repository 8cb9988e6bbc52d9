package ecsemu

// SetTestHookBlocked installs a function called whenever a request starts
// to block in a hang or latency fault.
func SetTestHookBlocked(e *Emulator, f func(kind string)) {
	e.mu.Lock()
	e.testHookBlocked = f
	e.mu.Unlock()
}
