#include "dist/rendezvous.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <thread>

#include "core/error.h"
#include "core/log.h"

namespace attnlab::dist {

namespace {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

constexpr uint32_t kMagic = 0x56524c41;  // "ALRV" in little-endian byte order
constexpr uint32_t kStatusOk = 0, kStatusError = 1;
constexpr size_t kHelloBytes = 24, kReplyHeaderBytes = 12;
constexpr size_t kMaxErrorBytes = 64 * 1024;
constexpr double kHelloReadTimeoutS = 10;  // a connection that sends no hello is not one of ours

Deadline after(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}
int ms_until(Deadline d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d - Clock::now()).count();
  return int(std::clamp<long long>(ms, 0, 1 << 30));
}

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

void put_u32(std::vector<uint8_t>& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(uint8_t(v >> (8 * i)));
}
void put_u64(std::vector<uint8_t>& b, uint64_t v) {
  for (int i = 0; i < 8; ++i) b.push_back(uint8_t(v >> (8 * i)));
}
uint32_t get_u32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(p[i]) << (8 * i);
  return v;
}
uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

std::string hex16(uint64_t v) {
  char s[17];
  std::snprintf(s, sizeof s, "%016llx", static_cast<unsigned long long>(v));
  return s;
}

std::string where(const RendezvousOptions& o) {
  bool v6 = o.host.find(':') != std::string::npos;
  return detail::cat(v6 ? "[" : "", o.host, v6 ? "]" : "", ":", o.port);
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

enum class Io { ok, timeout, closed, error };

// Sends all n bytes before the deadline (non-blocking socket). MSG_NOSIGNAL: a peer that went
// away is an error to report, not a SIGPIPE that kills the process.
Io write_all(int fd, const void* data, size_t n, Deadline d) {
  auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k > 0) {
      p += k;
      n -= size_t(k);
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return errno == EPIPE ? Io::closed : Io::error;
    pollfd pfd{fd, POLLOUT, 0};
    int r = ::poll(&pfd, 1, ms_until(d));
    if (r == 0) return Io::timeout;
    if (r < 0 && errno != EINTR) return Io::error;
  }
  return Io::ok;
}

Io read_exact(int fd, void* data, size_t n, Deadline d) {
  auto* p = static_cast<uint8_t*>(data);
  while (n > 0) {
    ssize_t k = ::recv(fd, p, n, 0);
    if (k > 0) {
      p += k;
      n -= size_t(k);
      continue;
    }
    if (k == 0) return Io::closed;
    if (errno == EINTR) continue;
    if (errno == ECONNRESET) return Io::closed;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Io::error;
    pollfd pfd{fd, POLLIN, 0};
    int r = ::poll(&pfd, 1, ms_until(d));
    if (r == 0) return Io::timeout;
    if (r < 0 && errno != EINTR) return Io::error;
  }
  return Io::ok;
}

std::string numeric_host(const sockaddr* sa, socklen_t len) {
  char host[NI_MAXHOST] = "?";
  ::getnameinfo(sa, len, host, sizeof host, nullptr, 0, NI_NUMERICHOST);
  std::string h = host;
  if (h.rfind("::ffff:", 0) == 0) h = h.substr(7);  // IPv4 peer on a dual-stack socket
  return h;
}

// ---- rank 0 -------------------------------------------------------------------------------

Fd listen_socket(const RendezvousOptions& o) {
  auto fail = [&](const char* what, int err) -> Fd {
    std::string hint = err == EADDRINUSE ? " — another job (or a run still exiting) holds this port; choose "
                                           "another MASTER_PORT (attnlab launch --master-port)"
                                         : "";
    FAIL_WITH("rendezvous at ", where(o), ": rank 0 cannot ", what, ": ", std::strerror(err), hint);
  };
  // Loopback addresses listen on loopback only; anything else on every interface (dual-stack),
  // since MASTER_ADDR names this host as the other ranks reach it, not necessarily a local name.
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET6;
  if (is_loopback(o.host) && o.host != "::1") {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(uint16_t(o.port));
    ::inet_pton(AF_INET, o.host == "localhost" ? "127.0.0.1" : o.host.c_str(), &a->sin_addr);
    len = sizeof *a;
    family = AF_INET;
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(uint16_t(o.port));
    a->sin6_addr = o.host == "::1" ? in6addr_loopback : in6addr_any;
    len = sizeof *a;
  }
  Fd s(::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (s.get() < 0 && family == AF_INET6) {  // no IPv6 in this kernel: IPv4 on every interface
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    *a = sockaddr_in{};
    a->sin_family = AF_INET;
    a->sin_port = htons(uint16_t(o.port));
    a->sin_addr.s_addr = htonl(INADDR_ANY);
    len = sizeof *a;
    s = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  }
  if (s.get() < 0) return fail("create a socket", errno);
  int one = 1, zero = 0;
  ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // restart within TIME_WAIT
  if (ss.ss_family == AF_INET6 && o.host != "::1")
    ::setsockopt(s.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return fail("bind", errno);
  if (::listen(s.get(), SOMAXCONN) != 0) return fail("listen", errno);
  return s;
}

struct Peer {
  Fd fd;
  std::string host;
  int rank = -1;
};

std::vector<uint8_t> reply_bytes(uint32_t status, const void* data, size_t n) {
  std::vector<uint8_t> b;
  put_u32(b, kMagic);
  put_u32(b, status);
  put_u32(b, uint32_t(n));
  auto* p = static_cast<const uint8_t*>(data);
  b.insert(b.end(), p, p + n);
  return b;
}

// Reads and checks one hello. Returns nullopt for a connection that is not an attnlab rank
// (no hello in time, wrong magic): it is closed and the wait goes on. Returns an error message
// (empty when the hello is fine) otherwise.
std::optional<std::string> check_hello(const RendezvousOptions& o, Peer& p, Deadline deadline,
                                       const std::map<int, std::string>& seen) {
  uint8_t h[kHelloBytes];
  Io io = read_exact(p.fd.get(), h, sizeof h, std::min(deadline, after(kHelloReadTimeoutS)));
  if (io != Io::ok || get_u32(h) != kMagic) {
    log_warn("rendezvous at ", where(o), ": ignoring a connection from ", p.host,
             io == Io::ok ? " that is not an attnlab rank (wrong magic)" : " that sent no hello");
    return std::nullopt;
  }
  uint32_t version = get_u32(h + 4);
  int rank = int(int32_t(get_u32(h + 8)));
  int world = int(int32_t(get_u32(h + 12)));
  uint64_t hash = get_u64(h + 16);
  p.rank = rank;
  std::string at = detail::cat("rendezvous at ", where(o), ": ");
  if (version != kRendezvousProtocolVersion)
    return detail::cat(at, "rank ", rank, " at ", p.host, " speaks rendezvous protocol v", version, ", rank 0 v",
                       kRendezvousProtocolVersion, " — run the same attnlab build on every rank");
  if (world != o.world_size)
    return detail::cat(at, "rank ", rank, " at ", p.host, " reports world size ", world, ", rank 0 expects ",
                       o.world_size, " — launch all ranks with the same --nproc / world size (or another job uses "
                       "this MASTER_ADDR:MASTER_PORT)");
  if (rank <= 0 || rank >= o.world_size)
    return detail::cat(at, "a peer at ", p.host, " claims rank ", rank, " but ranks 1 .. ", o.world_size - 1,
                       " are expected — check RANK (or the launcher's rank variable) on that host");
  if (auto it = seen.find(rank); it != seen.end())
    return detail::cat(at, "rank ", rank, " connected twice (from ", it->second, " and ", p.host,
                       ") — two jobs share this MASTER_ADDR:MASTER_PORT, or RANK is set wrongly");
  if (hash != o.config_hash)
    return detail::cat(at, "rank ", rank, " at ", p.host, " has config hash ", hex16(hash), ", rank 0 has ",
                       hex16(o.config_hash), " — every rank must run the same experiment config and overrides");
  return std::string();
}

// Best effort: a peer that cannot be told fails on its own timeout.
void send_error(const Peer& p, const std::string& msg) {
  std::string m = msg.substr(0, kMaxErrorBytes);
  std::vector<uint8_t> b = reply_bytes(kStatusError, m.data(), m.size());
  write_all(p.fd.get(), b.data(), b.size(), after(2.0));
}

std::vector<uint8_t> serve(const RendezvousOptions& o, const std::vector<uint8_t>& payload) {
  CHECK(payload.size() <= kRendezvousMaxPayload, "rendezvous payload of ", payload.size(), " bytes exceeds ",
        kRendezvousMaxPayload);
  Fd listener = listen_socket(o);
  const Deadline deadline = after(o.timeout_s);
  std::vector<Peer> peers;           // connected ranks (and, after an error, everyone to tell)
  std::map<int, std::string> seen;   // valid ranks that said hello, with their hosts
  std::string first_error;
  Deadline stop = deadline;          // moves closer after the first error (the grace period)
  while (int(seen.size()) < o.world_size - 1) {
    pollfd pfd{listener.get(), POLLIN, 0};
    int r = ::poll(&pfd, 1, ms_until(stop));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;  // timeout (or a poll failure: reported as one)
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    Peer p;
    p.fd = Fd(::accept4(listener.get(), reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (p.fd.get() < 0) continue;
    p.host = numeric_host(reinterpret_cast<sockaddr*>(&ss), len);
    int one = 1;
    ::setsockopt(p.fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto problem = check_hello(o, p, stop, seen);
    if (!problem) continue;
    if (p.rank > 0 && p.rank < o.world_size && !seen.count(p.rank)) seen[p.rank] = p.host;
    if (!problem->empty() && first_error.empty()) {
      first_error = *problem;
      stop = std::min(deadline, after(o.error_grace_s));
      for (const Peer& q : peers) send_error(q, first_error);
    }
    if (!first_error.empty()) send_error(p, first_error);
    peers.push_back(std::move(p));
  }
  if (first_error.empty() && int(seen.size()) < o.world_size - 1) {
    std::string missing;
    int shown = 0, count = 0;
    for (int r = 1; r < o.world_size; ++r) {
      if (seen.count(r)) continue;
      ++count;
      if (shown++ < 16) missing += detail::cat(missing.empty() ? "" : ", ", r);
    }
    if (count > shown) missing += detail::cat(", ... (", count, " in all)");
    first_error = detail::cat("rendezvous at ", where(o), ": rank 0 waited ", o.timeout_s, " s but ranks ", missing,
                              " never connected — they were not started, cannot reach this host, use another "
                              "MASTER_ADDR/MASTER_PORT, or (Slurm) attnlab ran in the batch script without srun");
    for (const Peer& q : peers) send_error(q, first_error);
  }
  if (!first_error.empty()) FAIL_WITH(first_error);

  std::vector<uint8_t> ok = reply_bytes(kStatusOk, payload.data(), payload.size());
  const Deadline ack_deadline = std::max(deadline, after(10.0));
  for (const Peer& p : peers)
    if (write_all(p.fd.get(), ok.data(), ok.size(), ack_deadline) != Io::ok)
      FAIL_WITH("rendezvous at ", where(o), ": could not send the payload to rank ", p.rank, " at ", p.host,
                ": ", std::strerror(errno));
  for (const Peer& p : peers) {
    uint8_t ack[4];
    if (read_exact(p.fd.get(), ack, 4, ack_deadline) != Io::ok || get_u32(ack) != kMagic)
      FAIL_WITH("rendezvous at ", where(o), ": rank ", p.rank, " at ", p.host,
                " did not acknowledge the payload (it stopped during the rendezvous; see its log)");
  }
  return payload;
}

// ---- ranks 1 .. world-1 --------------------------------------------------------------------

// One connection attempt to every address the host resolves to. Returns an invalid Fd and
// sets `error` when none accepted.
Fd try_connect(const RendezvousOptions& o, Deadline d, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(o.port);
  int g = ::getaddrinfo(o.host.c_str(), port.c_str(), &hints, &res);
  if (g != 0) {
    error = detail::cat("cannot resolve '", o.host, "': ", ::gai_strerror(g));
    return Fd();
  }
  Fd result;
  for (addrinfo* a = res; a && result.get() < 0; a = a->ai_next) {
    Fd s(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol));
    if (s.get() < 0) {
      error = std::strerror(errno);
      continue;
    }
    int rc = ::connect(s.get(), a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno != EINPROGRESS) {
      error = std::strerror(errno);
      continue;
    }
    if (rc != 0) {
      pollfd pfd{s.get(), POLLOUT, 0};
      int r = ::poll(&pfd, 1, std::min(ms_until(d), 10000));
      int err = 0;
      socklen_t len = sizeof err;
      if (r <= 0) {
        error = "connect timed out";
        continue;
      }
      ::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        error = std::strerror(err);
        continue;
      }
    }
    result = std::move(s);
  }
  ::freeaddrinfo(res);
  return result;
}

std::vector<uint8_t> join(const RendezvousOptions& o) {
  const Deadline deadline = after(o.timeout_s);
  double backoff = o.initial_backoff_s;
  int attempts = 0;
  std::string last_error;
  Fd s;
  while (true) {
    ++attempts;
    s = try_connect(o, deadline, last_error);
    if (s.get() >= 0) break;
    if (Clock::now() >= deadline)
      FAIL_WITH("rendezvous at ", where(o), ": rank ", o.rank, " could not reach rank 0 within ", o.timeout_s,
                " s (", attempts, " attempts; last error: ", last_error,
                ") — is rank 0 running, and are MASTER_ADDR and MASTER_PORT the same on every rank?");
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<long long>(
        ms_until(deadline), std::llround(backoff * 1000.0))));
    backoff = std::min(backoff * 2, o.max_backoff_s);
  }
  int one = 1;
  ::setsockopt(s.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  std::vector<uint8_t> hello;
  put_u32(hello, kMagic);
  put_u32(hello, kRendezvousProtocolVersion);
  put_u32(hello, uint32_t(o.rank));
  put_u32(hello, uint32_t(o.world_size));
  put_u64(hello, o.config_hash);
  std::string at = detail::cat("rendezvous at ", where(o), ": rank ", o.rank, ": ");
  if (write_all(s.get(), hello.data(), hello.size(), deadline) != Io::ok)
    FAIL_WITH(at, "could not send the hello to rank 0: ", std::strerror(errno));

  uint8_t head[kReplyHeaderBytes];
  Io io = read_exact(s.get(), head, sizeof head, deadline);
  if (io == Io::timeout)
    FAIL_WITH(at, "connected, but rank 0 did not answer within ", o.timeout_s,
              " s — it is still waiting for other ranks (its log names them)");
  if (io != Io::ok)
    FAIL_WITH(at, "rank 0 closed the connection without answering — it failed or stopped (see its log), or "
                  "the server on this port is not an attnlab rendezvous");
  uint32_t status = get_u32(head + 4), n = get_u32(head + 8);
  bool sane = get_u32(head) == kMagic && (status == kStatusOk || status == kStatusError) &&
              n <= (status == kStatusOk ? kRendezvousMaxPayload : kMaxErrorBytes);
  if (!sane) FAIL_WITH(at, "the server on this port is not an attnlab rendezvous (unexpected reply)");
  std::vector<uint8_t> body(n);
  if (n && read_exact(s.get(), body.data(), n, after(10.0)) != Io::ok)
    FAIL_WITH(at, "the reply from rank 0 was cut short");
  if (status == kStatusError) FAIL_WITH(std::string(body.begin(), body.end()));
  std::vector<uint8_t> ack;
  put_u32(ack, kMagic);
  if (write_all(s.get(), ack.data(), ack.size(), after(10.0)) != Io::ok)
    FAIL_WITH(at, "could not acknowledge the payload: rank 0 went away");
  return body;
}

}  // namespace

std::vector<uint8_t> rendezvous(const RendezvousOptions& o, const std::vector<uint8_t>& payload) {
  CHECK(o.world_size >= 1 && o.rank >= 0 && o.rank < o.world_size, "rendezvous: rank ", o.rank,
        " is outside a world of ", o.world_size);
  CHECK(o.port > 0 && o.port < 65536, "rendezvous: port ", o.port, " is not a TCP port (1 .. 65535)");
  CHECK(!o.host.empty(), "rendezvous: no host (MASTER_ADDR) given");
  CHECK(o.timeout_s > 0, "rendezvous: the timeout must be positive, got ", o.timeout_s);
  return o.rank == 0 ? serve(o, payload) : join(o);
}

int pick_free_loopback_port() {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  CHECK(s.get() >= 0, "socket: ", std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  CHECK(::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "bind 127.0.0.1:0: ", std::strerror(errno));
  socklen_t len = sizeof a;
  CHECK(::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len) == 0, "getsockname: ", std::strerror(errno));
  return ntohs(a.sin_port);
}

}  // namespace attnlab::dist
