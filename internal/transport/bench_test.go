package transport

import (
	"fmt"
	"testing"
)

func BenchmarkTokensValid(b *testing.B) {
	for _, n := range []int{1, 16} {
		var lines string
		for i := range n {
			lines += fmt.Sprintf("token-%04d-abcdefghijklmnop\n", i)
		}
		tok, err := ParseTokens([]byte(lines))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
			for b.Loop() {
				if tok.Valid("token-9999-abcdefghijklmnop") {
					b.Fatal("unexpected match")
				}
			}
		})
	}
}

// BenchmarkUnaryCall measures a whole authenticated call over the unix
// socket, interceptors included.
func BenchmarkUnaryCall(b *testing.B) {
	for _, withToken := range []bool{false, true} {
		b.Run(fmt.Sprintf("token=%v", withToken), func(b *testing.B) {
			benchUnary(b, withToken)
		})
	}
}

func benchUnary(b *testing.B, withToken bool) {
	cfg := ServerConfig{Address: sockPath(b)}
	ccfg := ClientConfig{}
	if withToken {
		cfg.TokenFile = tokenFile(b, tokenA)
		ccfg.Token = tokenA
	}
	srv := startServer(b, cfg)
	ccfg.Address = srv.addr
	cc := dial(b, ccfg)
	ctx := callCtx(b)
	for b.Loop() {
		if err := unary(b, ctx, cc, "hi"); err != nil {
			b.Fatal(err)
		}
	}
}
