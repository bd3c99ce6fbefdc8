package postgres

import (
	"fmt"
	"testing"

	"pxed/internal/store/storetest"
)

// BenchmarkPut measures durable Puts/s with one writer (one commit per
// lease) and 64 concurrent writers (group commit). Run with
// -benchtime=3000x or more; addresses wrap after 131072.
func BenchmarkPut(b *testing.B) {
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) { storetest.BenchPuts(b, openTemp(b, Options{}), writers) })
	}
}

// BenchmarkManagerDORA measures full DISCOVER+REQUEST cycles over
// PostgreSQL with 64 concurrent clients.
func BenchmarkManagerDORA(b *testing.B) { storetest.BenchDORA(b, openTemp(b, Options{}), 64) }
