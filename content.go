// Package troupe holds the plans and roles shipped inside the binary.
package troupe

import "embed"

// Content is the shipped plans/ and roles/ (with roles/templates/). A
// directory on disk with the same layout overrides it file by file.
//
//go:embed plans roles
var Content embed.FS
