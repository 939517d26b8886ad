package cli

// PsCmd is `cedana ps`. (Stub: being written.)
type PsCmd struct{}

// JobCmd is `cedana job ...`. (Stub: being written.)
type JobCmd struct{}
