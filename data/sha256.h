#pragma once
// SHA-256 (FIPS 180-4), used to verify downloaded assets byte-for-byte.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace attnlab::data {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  std::array<uint8_t, 32> finish();  // the object is spent afterwards
  std::string finish_hex();

 private:
  void compress(const uint8_t* block);
  uint32_t state_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

std::string sha256_hex(std::string_view bytes);
// Hash of a file's contents; throws attnlab::Error naming the file when it cannot be read.
std::string sha256_file_hex(const std::string& path, uint64_t* size_out = nullptr);

}  // namespace attnlab::data
