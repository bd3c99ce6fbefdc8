// Package depcheck holds no code: its test enforces pxed's import graph
// (DESIGN.md "Parts") and that every package is documented.
package depcheck
