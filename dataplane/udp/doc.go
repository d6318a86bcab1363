// Package udp forwards the datagrams of UDP listeners (dataplane/v1 Listener
// protocol UDP) flow by flow.
//
// A flow is one client address (IP and port) on one listener socket. Its first
// datagram picks a backend of the listener's route by weight and an endpoint of
// that backend's group with the group's load balancing and health (as a TCP
// tunnel does), and opens a UDP socket connected to the endpoint; the flow's
// datagrams go out on that socket one for one (never merged or split), and
// what the endpoint sends back goes to the client from the listener's socket.
// A flow ends when nothing moved either way for the route's idle timeout, or
// when a new client needs room over the route's bound (the flow idle the
// longest goes). With the access log on, each flow logs one line when it ends
// (accesslog.Worker.LogFlow): bytes and datagrams each way, duration, and why.
//
// Table is the flow table, free of I/O: lookup, insertion, recency, expiry
// and eviction order, with no allocation per datagram. Engine is the driver:
// for each UDP listener it binds one SO_REUSEPORT socket per worker, and each
// socket has its own loop holding the listener socket and the flows'
// upstream sockets, with its own table, picker and metrics worker, so
// workers share nothing on the data path. The kernel hashes a client's
// address to one socket, so its flow lives in one loop. engine.Split hands
// UDP listeners to this Engine beside the io_uring or netpoll engine.
//
// With Options.IOUring (the daemon sets it with the io_uring engine) and a
// kernel that passes probeUring (multishot recvmsg with provided buffers,
// Linux 6.0), each loop is a goroutine locked to its thread with its own
// io_uring ring (ring_linux.go): a multishot recvmsg on every socket picks a
// provided buffer per datagram, each datagram is sent on from its buffer,
// and the sends prepared for a batch of completions are submitted with the
// next wait. Otherwise, or when a loop's ring cannot be made, the loop waits
// on its own epoll set (loop_linux.go). Engine.Driver says which.
package udp
