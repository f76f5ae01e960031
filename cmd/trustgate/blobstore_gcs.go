//go:build gcs

package main

// Google Cloud Storage for the blob store, in binaries built with -tags gcs (see blobstore.go).
import _ "github.com/distribution/distribution/v3/registry/storage/driver/gcs"
