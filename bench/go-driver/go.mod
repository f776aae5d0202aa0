module envd-bench/go-driver

go 1.25

require (
	connectrpc.com/connect v1.19.2
	google.golang.org/protobuf v1.36.9
)
