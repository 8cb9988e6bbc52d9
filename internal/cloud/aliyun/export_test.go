package aliyun

// WithDial is for tests: it sends every connection to addr, as /etc/hosts
// would, so that ECS host names reach a local server.
func withDial(c *Config, d dialFunc) { c.dial = d }
