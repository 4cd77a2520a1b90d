#pragma once
// A small TCP rendezvous: every rank meets rank 0 at MASTER_ADDR:MASTER_PORT, proves it belongs
// to the same job, and receives rank 0's payload (the NCCL unique id, or any bytes).
//
// Rank 0 listens (on 127.0.0.1 when the address is a loopback one, else on every interface);
// the other ranks connect, retrying with exponential backoff until the timeout, and send a
// hello: magic, protocol version, rank, world size and the config hash. Rank 0 waits for all
// world_size - 1 peers and checks each hello (world size, config hash, version, rank in range,
// no rank twice). Then it answers every peer either OK plus the payload, or the first error;
// both sides raise that error, so a mismatched job fails on every rank with the same message,
// naming the host and port. Peers acknowledge the payload, so when rendezvous() returns on rank
// 0 every rank has it. After the first error rank 0 waits a short grace period for the ranks
// not yet connected, to tell them too.
//
// Wire format (little-endian): hello = u32 magic "ALRV", u32 version, i32 rank, i32 world,
// u64 config hash; reply = u32 magic, u32 status (0 ok, 1 error), u32 length, bytes (payload
// or error message); ack = u32 magic.
#include <cstdint>
#include <string>
#include <vector>

namespace attnlab::dist {

struct RendezvousOptions {
  std::string host;               // rank 0's address (MASTER_ADDR): name or numeric IPv4/IPv6
  int port = 0;                   // MASTER_PORT
  int rank = 0;
  int world_size = 1;
  uint64_t config_hash = 0;       // config::config_hash of the resolved experiment config
  double timeout_s = 300;         // total, per rank: connecting, waiting for peers, the reply
  double initial_backoff_s = 0.05;  // first retry delay of a refused connect; doubles each time
  double max_backoff_s = 2.0;
  double error_grace_s = 5.0;     // rank 0, after an error: how long to wait for late peers
};

constexpr uint32_t kRendezvousProtocolVersion = 1;
constexpr size_t kRendezvousMaxPayload = size_t(1) << 20;

// Every rank calls this once with the same options apart from `rank`. Rank 0 passes the
// payload (others pass nothing) and every rank gets rank 0's payload back. Throws
// attnlab::Error naming host:port on a mismatch, a timeout, or a network error.
std::vector<uint8_t> rendezvous(const RendezvousOptions& opt, const std::vector<uint8_t>& payload = {});

// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick for port 0). For
// `attnlab launch` and tests; another process could take it before it is used.
int pick_free_loopback_port();

}  // namespace attnlab::dist
