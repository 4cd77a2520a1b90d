// SHA-256 against the FIPS 180-2 / NIST example vectors, across buffer boundaries.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "data/sha256.h"

namespace attnlab::test {
namespace {

TEST(Sha256, NistVectors) {
  EXPECT_EQ(data::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(data::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(data::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(data::sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, ChunkedUpdatesAndFilesAgreeWithOneShot) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data.push_back(char((i * 131 + 7) & 0xFF));
  std::string whole = data::sha256_hex(data);
  for (size_t chunk : {1u, 3u, 55u, 56u, 63u, 64u, 65u, 127u}) {
    data::Sha256 h;
    for (size_t i = 0; i < data.size(); i += chunk) h.update(data.data() + i, std::min(chunk, data.size() - i));
    EXPECT_EQ(h.finish_hex(), whole) << "chunk " << chunk;
  }
  auto path = std::filesystem::temp_directory_path() / "attnlab_sha256_test.bin";
  std::ofstream(path, std::ios::binary) << data;
  uint64_t size = 0;
  EXPECT_EQ(data::sha256_file_hex(path.string(), &size), whole);
  EXPECT_EQ(size, data.size());
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace attnlab::test
