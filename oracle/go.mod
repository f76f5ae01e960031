module github.com/trustgate/trustgate/oracle

go 1.26.8

replace github.com/trustgate/trustgate => ../

require (
	github.com/opencontainers/go-digest v1.0.0
	github.com/sirupsen/logrus v1.10.2
	github.com/theupdateframework/notary v0.7.0
	github.com/trustgate/trustgate v0.0.0-00010101000000-000000000000
)

require (
	github.com/docker/distribution v2.7.1+incompatible // indirect
	github.com/docker/go v1.5.1-1.0.20160303222718-d30aec9fd63c // indirect
	github.com/miekg/pkcs11 v1.0.2 // indirect
	github.com/secure-systems-lab/go-securesystemslib v0.11.1 // indirect
	golang.org/x/crypto v0.57.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)
