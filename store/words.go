package store

// The word lists of NewJID: short, plain, lower-case ASCII words, 128 of each.

// adjectives are NewJID's first words.
var adjectives = []string{
	"able", "agile", "amber", "ample", "azure", "bold", "brave", "breezy",
	"bright", "brisk", "broad", "calm", "cheery", "civil", "clean", "clear",
	"clever", "cool", "cosmic", "crisp", "curly", "cyan", "dapper", "daring",
	"deft", "dusty", "eager", "early", "easy", "epic", "fair", "fancy", "fast",
	"fine", "firm", "fluffy", "fond", "frank", "free", "fresh", "frosty",
	"fuzzy", "gentle", "giddy", "glad", "golden", "grand", "great", "green",
	"happy", "hardy", "hazy", "honest", "humble", "icy", "jade", "jolly",
	"keen", "kind", "large", "lively", "lucky", "lunar", "mellow", "merry",
	"mighty", "misty", "modest", "mossy", "neat", "nimble", "noble", "odd",
	"olive", "patient", "plain", "plucky", "polite", "proud", "quick", "quiet",
	"rapid", "rare", "ready", "regal", "rosy", "royal", "rustic", "safe",
	"sandy", "shiny", "silent", "silver", "simple", "sleek", "slim", "smart",
	"smooth", "snowy", "solar", "solid", "sonic", "spry", "stark", "steady",
	"still", "stout", "sturdy", "sunny", "super", "swift", "tall", "tame",
	"tidy", "tiny", "topaz", "tough", "true", "vast", "vivid", "warm", "wavy",
	"wild", "wise", "witty", "young", "zany", "zesty",
}

// animals are NewJID's second words.
var animals = []string{
	"ant", "ape", "auk", "badger", "bat", "bear", "beaver", "bee", "bison",
	"boar", "bobcat", "camel", "carp", "cat", "cheetah", "chick", "cobra",
	"cod", "colt", "condor", "crab", "crane", "crow", "cub", "deer", "dingo",
	"dodo", "dog", "dove", "duck", "eagle", "eel", "egret", "elk", "emu",
	"falcon", "ferret", "finch", "fox", "frog", "gecko", "gerbil", "gibbon",
	"gnu", "goat", "goose", "gopher", "gull", "hare", "hawk", "heron", "hippo",
	"horse", "hound", "ibex", "ibis", "iguana", "impala", "jackal", "jaguar",
	"jay", "kiwi", "koala", "lark", "lemur", "leopard", "lion", "llama",
	"lobster", "loon", "lynx", "macaw", "magpie", "mink", "mole", "moose",
	"moth", "mouse", "mule", "newt", "ocelot", "okapi", "orca", "osprey",
	"otter", "owl", "ox", "panda", "parrot", "pelican", "penguin", "pika",
	"pony", "puffin", "puma", "quail", "rabbit", "raven", "robin", "salmon",
	"seal", "shark", "sheep", "shrew", "skunk", "sloth", "snail", "sparrow",
	"squid", "stork", "swan", "tapir", "tern", "tiger", "toad", "trout", "tuna",
	"turtle", "viper", "vole", "walrus", "wasp", "whale", "wolf", "wombat",
	"wren", "yak", "zebra",
}
