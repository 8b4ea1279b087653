package client

import "errors"

var (
	// ErrClosed is returned by Flush after Close, and by a Flush that
	// was waiting when Close stopped the Client.
	ErrClosed = errors.New("vigia client: closed")
	// ErrBusy is a delivery refused with "503 The server is busy"; what was
	// not acknowledged is sent again later.
	ErrBusy = errors.New("server busy")
	// ErrProtocol is a reply that is not one of the native protocol's.
	ErrProtocol = errors.New("unexpected reply")
)
