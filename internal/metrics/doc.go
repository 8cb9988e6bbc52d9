package metrics

import _ "github.com/prometheus/client_golang/prometheus"
