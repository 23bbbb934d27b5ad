//go:build !unix

package app

// oNoFollow is 0 where the flag does not exist; O_EXCL alone already
// refuses an existing link.
const oNoFollow = 0
