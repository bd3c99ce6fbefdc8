package main

import (
	"strconv"
	"unicode/utf8"
)

// termSafe returns s, a string that came off the network, fit to print on
// a terminal: unchanged when it is valid UTF-8 of printable characters
// (spaces included), else quoted as strconv.Quote does, with control
// characters (ESC, newline, tab…), Unicode format characters and invalid
// bytes escaped. A hostname or a server's message then cannot move the
// cursor, recolour or clear the screen, or forge lines of the report.
func termSafe(s string) string {
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
