// Package web is Trail's viewer: the pages trail serve shows at / to admins
// and auditors, and the static assets (style, script) they load. Every
// asset is embedded in the binary, so the viewer works offline and loads
// nothing from other hosts.
package web

import "embed"

// Static holds the viewer's assets, served under /static/.
//
//go:embed static
var Static embed.FS
