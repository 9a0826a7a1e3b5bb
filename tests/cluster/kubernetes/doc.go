// Package kubernetes only anchors the consumer module that builds the control plane binaries.
package kubernetes
