package cli

// CheckpointCmd is `cedana checkpoint ...`. (Stub: being written.)
type CheckpointCmd struct{}
