// The TCP rendezvous on loopback: ranks are threads of this process, ports are picked free at
// test time. Success broadcasts rank 0's payload; a wrong world size, config hash or duplicate
// rank fails on every rank (fast, naming host:port); a missing server or missing peer times out
// with a clear message.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dist/rendezvous.h"
#include "core/error.h"

namespace attnlab::dist {
namespace {

using Clock = std::chrono::steady_clock;

struct Outcome {
  bool ok = false;
  std::vector<uint8_t> payload;
  std::string error;
  double seconds = 0;
};

RendezvousOptions loopback(int port, int rank, int world, uint64_t hash = 0xfeedfacecafebeefull) {
  RendezvousOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.rank = rank;
  o.world_size = world;
  o.config_hash = hash;
  o.timeout_s = 20;  // far above what a passing test takes: "fast" below means well under this
  o.initial_backoff_s = 0.01;
  o.error_grace_s = 3;
  return o;
}

Outcome run_one(const RendezvousOptions& o, const std::vector<uint8_t>& payload) {
  Outcome out;
  auto t0 = Clock::now();
  try {
    out.payload = rendezvous(o, payload);
    out.ok = true;
  } catch (const Error& e) {
    out.error = e.what();
  }
  out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return out;
}

// Runs every rank's options on its own thread; peers start before rank 0 so that their retry
// path is exercised too.
std::vector<Outcome> run_all(const std::vector<RendezvousOptions>& opts, const std::vector<uint8_t>& payload) {
  std::vector<Outcome> out(opts.size());
  std::vector<std::thread> threads;
  for (size_t i = opts.size(); i-- > 0;) {
    threads.emplace_back([&, i] { out[i] = run_one(opts[i], opts[i].rank == 0 ? payload : std::vector<uint8_t>{}); });
    if (i == 1) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (auto& t : threads) t.join();
  return out;
}

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<uint8_t> b(n);
  for (auto& x : b) x = uint8_t(g());
  return b;
}

TEST(Rendezvous, ThreeRanksReceiveRankZerosPayload) {
  const int port = pick_free_loopback_port();
  const std::vector<uint8_t> id = random_bytes(128, 7);  // the size of an NCCL unique id
  auto out = run_all({loopback(port, 0, 3), loopback(port, 1, 3), loopback(port, 2, 3)}, id);
  for (size_t r = 0; r < out.size(); ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    ASSERT_TRUE(out[r].ok) << out[r].error;
    EXPECT_EQ(out[r].payload, id);
  }
}

TEST(Rendezvous, EmptyAndLargePayloads) {
  const int port = pick_free_loopback_port();
  auto out = run_all({loopback(port, 0, 2), loopback(port, 1, 2)}, {});
  ASSERT_TRUE(out[0].ok && out[1].ok) << out[0].error << " | " << out[1].error;
  EXPECT_TRUE(out[1].payload.empty());

  const int port2 = pick_free_loopback_port();
  const std::vector<uint8_t> big = random_bytes(300001, 11);  // more than one socket buffer
  out = run_all({loopback(port2, 0, 2), loopback(port2, 1, 2)}, big);
  ASSERT_TRUE(out[0].ok && out[1].ok) << out[0].error << " | " << out[1].error;
  EXPECT_EQ(out[1].payload, big);
}

TEST(Rendezvous, WorldOfOneNeedsNoPeers) {
  const std::vector<uint8_t> id = random_bytes(16, 3);
  Outcome o = run_one(loopback(pick_free_loopback_port(), 0, 1), id);
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_EQ(o.payload, id);
}

// Every rank fails, well before the timeout, with one message naming host:port and `fragment`.
void expect_all_fail_fast(const std::vector<Outcome>& out, int port, const std::string& fragment) {
  const std::string where = "127.0.0.1:" + std::to_string(port);
  for (size_t r = 0; r < out.size(); ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    ASSERT_FALSE(out[r].ok) << "rank " << r << " succeeded";
    EXPECT_NE(out[r].error.find(where), std::string::npos) << out[r].error;
    EXPECT_NE(out[r].error.find(fragment), std::string::npos) << out[r].error;
    EXPECT_LT(out[r].seconds, 10.0);
  }
}

TEST(Rendezvous, WrongWorldSizeFailsOnEveryRank) {
  const int port = pick_free_loopback_port();
  auto out = run_all({loopback(port, 0, 3), loopback(port, 1, 3), loopback(port, 2, 4)}, random_bytes(8, 1));
  expect_all_fail_fast(out, port, "rank 2 at 127.0.0.1 reports world size 4, rank 0 expects 3");
  EXPECT_NE(out[1].error.find("same --nproc"), std::string::npos) << out[1].error;
}

TEST(Rendezvous, RankZeroWithSmallerWorldFailsEveryone) {
  // Rank 0 launched with --nproc 2, its peers with 3: rank 1 is expected but disagrees.
  const int port = pick_free_loopback_port();
  auto out = run_all({loopback(port, 0, 2), loopback(port, 1, 3), loopback(port, 2, 3)}, random_bytes(8, 1));
  ASSERT_FALSE(out[0].ok);
  EXPECT_NE(out[0].error.find("reports world size 3, rank 0 expects 2"), std::string::npos) << out[0].error;
  for (const Outcome& o : out) {
    EXPECT_FALSE(o.ok);
    EXPECT_NE(o.error.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << o.error;
  }
}

TEST(Rendezvous, WrongConfigHashFails) {
  const int port = pick_free_loopback_port();
  auto out = run_all({loopback(port, 0, 3), loopback(port, 1, 3, 0x1234), loopback(port, 2, 3)}, random_bytes(8, 1));
  expect_all_fail_fast(out, port, "rank 1 at 127.0.0.1 has config hash 0000000000001234, rank 0 has feedfacecafebeef");
}

TEST(Rendezvous, DuplicateRankFails) {
  const int port = pick_free_loopback_port();
  std::vector<RendezvousOptions> opts = {loopback(port, 0, 3), loopback(port, 1, 3), loopback(port, 1, 3)};
  opts[0].error_grace_s = 1;  // rank 2 never comes; rank 0 stops waiting for it after the grace
  auto out = run_all(opts, random_bytes(8, 1));
  ASSERT_FALSE(out[0].ok);
  EXPECT_NE(out[0].error.find("rank 1 connected twice"), std::string::npos) << out[0].error;
  // One of the two rank-1 threads was accepted first, the other is the duplicate: both are told.
  EXPECT_FALSE(out[1].ok);
  EXPECT_FALSE(out[2].ok);
}

TEST(Rendezvous, ConnectTimeoutWithoutServer) {
  const int port = pick_free_loopback_port();  // nobody listens here
  RendezvousOptions o = loopback(port, 1, 2);
  o.timeout_s = 0.6;
  Outcome out = run_one(o, {});
  ASSERT_FALSE(out.ok);
  EXPECT_NE(out.error.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << out.error;
  EXPECT_NE(out.error.find("could not reach rank 0 within 0.6 s"), std::string::npos) << out.error;
  EXPECT_NE(out.error.find("Connection refused"), std::string::npos) << out.error;
  EXPECT_GE(out.seconds, 0.55);
  EXPECT_LT(out.seconds, 5.0);
}

TEST(Rendezvous, RankZeroTimesOutNamingMissingRanks) {
  const int port = pick_free_loopback_port();
  RendezvousOptions r0 = loopback(port, 0, 4), r1 = loopback(port, 1, 4);
  r0.timeout_s = 1.0;
  r1.timeout_s = 4.0;  // outlives rank 0, so it hears rank 0's verdict
  auto out = run_all({r0, r1}, random_bytes(8, 1));
  for (const Outcome& o : out) {
    ASSERT_FALSE(o.ok);
    EXPECT_NE(o.error.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << o.error;
    EXPECT_NE(o.error.find("ranks 2, 3 never connected"), std::string::npos) << o.error;
  }
  EXPECT_GE(out[0].seconds, 0.95);
  EXPECT_LT(out[1].seconds, 3.0);
}

TEST(Rendezvous, PortInUseFailsOnRankZero) {
  int holder = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(holder, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(holder, 4), 0);
  socklen_t len = sizeof a;
  ::getsockname(holder, reinterpret_cast<sockaddr*>(&a), &len);
  const int port = ntohs(a.sin_port);
  Outcome out = run_one(loopback(port, 0, 2), {});
  ::close(holder);
  ASSERT_FALSE(out.ok);
  EXPECT_NE(out.error.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << out.error;
  EXPECT_NE(out.error.find("in use"), std::string::npos) << out.error;
  EXPECT_NE(out.error.find("MASTER_PORT"), std::string::npos) << out.error;
}

TEST(Rendezvous, ForeignServerIsRecognised) {
  // Something else listens on the port and answers with text: the peer must not take it for
  // rank 0's payload.
  int srv = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(srv, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(srv, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(srv, 4), 0);
  socklen_t len = sizeof a;
  ::getsockname(srv, reinterpret_cast<sockaddr*>(&a), &len);
  const int port = ntohs(a.sin_port);
  std::thread foreign([srv] {
    int c = ::accept(srv, nullptr, nullptr);
    if (c < 0) return;
    char buf[64];
    (void)!::recv(c, buf, sizeof buf, 0);
    const char reply[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
    (void)!::send(c, reply, sizeof reply - 1, 0);
    ::close(c);
  });
  RendezvousOptions o = loopback(port, 1, 2);
  o.timeout_s = 5;
  Outcome out = run_one(o, {});
  foreign.join();
  ::close(srv);
  ASSERT_FALSE(out.ok);
  EXPECT_NE(out.error.find("not an attnlab rendezvous"), std::string::npos) << out.error;
}

TEST(Rendezvous, InvalidOptionsAreRejected) {
  RendezvousOptions o = loopback(29500, 3, 2);
  EXPECT_THROW(rendezvous(o), Error);
  o = loopback(0, 0, 2);
  EXPECT_THROW(rendezvous(o), Error);
  o = loopback(29500, 0, 2);
  o.host.clear();
  EXPECT_THROW(rendezvous(o), Error);
}

}  // namespace
}  // namespace attnlab::dist
