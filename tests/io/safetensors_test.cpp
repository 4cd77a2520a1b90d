#include "core/io/safetensors.h"

#include <sys/resource.h>

#include <csignal>
#include <cstring>
#include <random>

#include "io/io_test_util.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

// Host storage for one tensor to write, filled with random values (never zeros). The view `t`
// points into `bytes`; copies re-point it, so HostTensors can live in initializer lists.
struct HostTensor {
  std::string name;
  std::vector<uint8_t> bytes;
  Tensor t;
  HostTensor() = default;
  HostTensor(const HostTensor& o) : name(o.name), bytes(o.bytes), t(o.t) { t.data = bytes.data(); }
  HostTensor& operator=(const HostTensor&) = delete;
};

HostTensor random_tensor(const std::string& name, DType dt, std::vector<int64_t> dims, uint64_t seed) {
  HostTensor h;
  h.name = name;
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  h.bytes.resize(size_t(n) * dtype_size(dt) + 1);  // +1: a valid pointer even when empty
  std::mt19937_64 g(seed);
  std::normal_distribution<double> normal(0.0, 3.0);
  for (int64_t i = 0; i < n; ++i) {
    uint8_t* p = h.bytes.data() + size_t(i) * dtype_size(dt);
    if (dt == DType::f64) { double v = normal(g); std::memcpy(p, &v, 8); }
    else if (dt == DType::f32) { float v = float(normal(g)); std::memcpy(p, &v, 4); }
    else if (dt == DType::i32) { int32_t v = int32_t(g()); std::memcpy(p, &v, 4); }
    else { uint16_t v = uint16_t(g()); std::memcpy(p, &v, 2); }  // bf16 / f16: every bit pattern, NaNs included
  }
  h.t.data = h.bytes.data();
  h.t.dtype = dt;
  h.t.ndim = int(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) h.t.shape[i] = dims[i];
  return h;
}

std::vector<NamedTensor> named(const std::vector<HostTensor>& hs) {
  std::vector<NamedTensor> v;
  for (const auto& h : hs) v.push_back({h.name, h.t});
  return v;
}

void expect_contains(const std::string& msg, const std::string& part) {
  EXPECT_NE(msg.find(part), std::string::npos) << "message lacks \"" << part << "\":\n  " << msg;
}

// The file is refused on disk and in memory, with its name, "Fix:" and every given part.
void expect_refused(const std::vector<uint8_t>& bytes, std::initializer_list<std::string> parts) {
  ScratchDir dir;
  const std::string path = dir.file("bad.safetensors");
  write_bytes(path, bytes);
  for (bool on_disk : {true, false}) {
    const std::string label = on_disk ? path : "in-memory.safetensors";
    try {
      if (on_disk) SafetensorsFile::open(path);
      else SafetensorsFile::from_bytes(bytes, label);
      ADD_FAILURE() << "malformed file accepted (" << (on_disk ? "disk" : "memory") << ")";
    } catch (const Error& e) {
      const std::string msg = e.what();
      expect_contains(msg, "'" + label + "'");
      expect_contains(msg, "Fix:");
      for (const auto& p : parts) expect_contains(msg, p);
    }
  }
}

std::vector<uint8_t> filler(size_t n) {
  std::vector<uint8_t> d(n);
  for (size_t i = 0; i < n; ++i) d[i] = uint8_t(17 + 31 * i);
  return d;
}

}  // namespace

TEST(Safetensors, RoundTripIsBitExactForEveryDtype) {
  ScratchDir dir;
  // Wider dtypes first keeps every tensor aligned to its element size (the writer keeps order).
  std::vector<HostTensor> hs;
  hs.push_back(random_tensor("model.w64", DType::f64, {5, 3}, 1));
  hs.push_back(random_tensor("a.f32", DType::f32, {7, 13}, 2));
  hs.push_back(random_tensor("scalar", DType::f32, {}, 3));
  hs.push_back(random_tensor("empty", DType::f32, {0, 4}, 4));
  hs.push_back(random_tensor("four.dims", DType::f32, {2, 3, 1, 5}, 5));
  hs.push_back(random_tensor("ids", DType::i32, {6}, 6));
  hs.push_back(random_tensor("h.0.attn.bias", DType::bf16, {3, 5, 2}, 7));
  hs.push_back(random_tensor("half", DType::f16, {11}, 8));
  const std::string path = dir.file("rt.safetensors");
  write_safetensors(path, named(hs));

  SafetensorsFile f = SafetensorsFile::open(path);
  ASSERT_EQ(f.names().size(), hs.size());
  for (size_t i = 0; i < hs.size(); ++i) {
    SCOPED_TRACE(hs[i].name);
    EXPECT_EQ(f.names()[i], hs[i].name);  // file order = the order given to the writer
    const SafetensorInfo& ti = f.info(hs[i].name);
    EXPECT_EQ(ti.dtype, to_st_dtype(hs[i].t.dtype));
    ASSERT_EQ(int(ti.shape.size()), hs[i].t.ndim);
    for (int k = 0; k < hs[i].t.ndim; ++k) EXPECT_EQ(ti.shape[k], hs[i].t.shape[k]);
    EXPECT_EQ(ti.bytes(), hs[i].t.bytes());
    Tensor v = f.view(hs[i].name);
    EXPECT_EQ(v.dtype, hs[i].t.dtype);
    EXPECT_EQ(v.numel(), hs[i].t.numel());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data) % dtype_size(v.dtype), 0u);
    EXPECT_EQ(std::memcmp(v.data, hs[i].bytes.data(), v.bytes()), 0);
  }
  EXPECT_TRUE(f.has("scalar"));
  EXPECT_FALSE(f.has("missing"));
  EXPECT_TRUE(f.metadata().empty());
  EXPECT_EQ(f.view("scalar").numel(), 1);
}

TEST(Safetensors, WrittenLayoutFollowsTheSpec) {
  ScratchDir dir;
  std::vector<HostTensor> hs = {random_tensor("zeta", DType::f32, {3}, 9), random_tensor("alpha", DType::bf16, {5}, 10)};
  const std::string path = dir.file("layout.safetensors");
  write_safetensors(path, named(hs), {{"format", "pt"}});
  auto bytes = read_bytes(path);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  EXPECT_EQ(n % 8, 0u);
  ASSERT_EQ(bytes.size(), 8 + n + 12 + 10);
  std::string header(bytes.begin() + 8, bytes.begin() + 8 + long(n));
  const auto last = header.find_last_not_of(' ');
  EXPECT_EQ(header[last], '}');
  EXPECT_LT(header.size() - last - 1, 8u);  // padding is spaces, fewer than 8
  // Keys sorted (deterministic), offsets in the order given: zeta first although it sorts last.
  EXPECT_LT(header.find("\"__metadata__\""), header.find("\"alpha\""));
  EXPECT_LT(header.find("\"alpha\""), header.find("\"zeta\""));
  expect_contains(header, "\"zeta\":{\"data_offsets\":[0,12],\"dtype\":\"F32\",\"shape\":[3]}");
  expect_contains(header, "\"alpha\":{\"data_offsets\":[12,22],\"dtype\":\"BF16\",\"shape\":[5]}");
  EXPECT_EQ(std::memcmp(bytes.data() + 8 + n, hs[0].bytes.data(), 12), 0);
  EXPECT_EQ(std::memcmp(bytes.data() + 8 + n + 12, hs[1].bytes.data(), 10), 0);
  for (const auto& e : dir.entries()) EXPECT_EQ(e, "layout.safetensors") << "leftover file";
}

TEST(Safetensors, MetadataRoundTrip) {
  ScratchDir dir;
  std::map<std::string, std::string> meta = {
      {"format", "pt"}, {"note", "quotes \" and \\ backslash\nnew line"}, {"unicode", "Zürich ∑ 漢字"}, {"empty", ""}};
  std::vector<HostTensor> hs = {random_tensor("x", DType::f32, {4}, 12)};
  const std::string path = dir.file("meta.safetensors");
  write_safetensors(path, named(hs), meta);
  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.metadata(), meta);
  EXPECT_EQ(f.names(), std::vector<std::string>{"x"});  // __metadata__ is not a tensor
}

// Bytes laid down by hand from the format description, independent of our writer.
TEST(Safetensors, ReadsHandWrittenGoldenFile) {
  std::vector<uint8_t> data;
  for (uint32_t bits : {0x3FC00000u, 0xC0100000u, 0x40400000u, 0x3E000000u}) append_le(data, bits, 4);  // 1.5 -2.25 3 0.125
  for (uint16_t bits : {uint16_t(0x3F80), uint16_t(0xC020), uint16_t(0x3F00)}) append_le(data, bits, 2);  // 1 -2.5 0.5
  append_le(data, uint64_t(-7), 8);
  data.push_back(1);
  data.push_back(0);
  const std::string entries =
      R"({"h":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]},"__metadata__":{"format":"pt","made":"by hand"},)"
      R"("w":{"shape":[2,2],"dtype":"F32","data_offsets":[0,16]},"ids":{"dtype":"I64","shape":[1],"data_offsets":[22,30]},)"
      R"("mask":{"dtype":"BOOL","shape":[2],"data_offsets":[30,32]}})";
  const std::vector<double> w_expect = {1.5, -2.25, 3.0, 0.125}, h_expect = {1.0, -2.5, 0.5};

  for (int misalign : {0, 2}) {
    SCOPED_TRACE(misalign ? "data section at 2 mod 8" : "data section 8-byte aligned");
    std::string header = entries;
    while ((8 + header.size()) % 8 != size_t(misalign)) header += ' ';
    SafetensorsFile f = SafetensorsFile::from_bytes(assemble_safetensors(header, data), "golden.safetensors");
    EXPECT_EQ(f.names(), (std::vector<std::string>{"w", "h", "ids", "mask"}));
    EXPECT_EQ(f.metadata().at("made"), "by hand");
    EXPECT_EQ(f.info("w").file_offset, 8 + header.size());
    EXPECT_EQ(f.info("ids").dtype, StDType::I64);
    EXPECT_EQ(f.info("mask").dtype, StDType::BOOL);
    EXPECT_EQ(read_tensor_f64(f, "w"), w_expect);
    EXPECT_EQ(read_tensor_f64(f, "h"), h_expect);
    int64_t id;
    std::memcpy(&id, f.raw("ids"), 8);
    EXPECT_EQ(id, -7);
    EXPECT_EQ(f.raw("mask")[0], 1);
    EXPECT_EQ(f.raw("mask")[1], 0);
    try {
      f.view("ids");
      ADD_FAILURE() << "I64 view accepted";
    } catch (const Error& e) {
      expect_contains(e.what(), "I64, which has no attnlab dtype");
    }
    if (misalign == 0) {
      Tensor w = f.view("w");
      check_shape(w, {2, 2});
      for (int i = 0; i < 4; ++i) EXPECT_EQ(w.ptr<float>()[i], w_expect[i]);
      Tensor h = f.view("h");
      for (int i = 0; i < 3; ++i) EXPECT_EQ(bf16_to_float(h.ptr<bf16>()[i]), h_expect[i]);
    } else {
      try {
        f.view("w");
        ADD_FAILURE() << "misaligned F32 view accepted";
      } catch (const Error& e) {
        expect_contains(e.what(), "not a multiple of its element size");
      }
    }
  }
}

namespace {
// Reference double -> 16-bit rounding by brute force: the nearest of the neighbouring
// representable values, ties to the even bit pattern.
uint16_t nearest16(double d, uint16_t start, double (*decode)(uint16_t)) {
  uint16_t best = start;
  for (int delta = -2; delta <= 2; ++delta) {
    const uint16_t c = uint16_t(start + delta);
    if (!std::isfinite(decode(c))) continue;
    const double dc = std::fabs(decode(c) - d), db = std::fabs(decode(best) - d);
    if (dc < db || (dc == db && (c & 1) == 0 && (best & 1) == 1)) best = c;
  }
  return best;
}
double bf16_value(uint16_t b) { return bf16_to_float(bf16{b}); }
double f16_value(uint16_t b) { return f16_to_float(f16{b}); }
}  // namespace

TEST(Safetensors, ConvertsBetweenFloatDtypes) {
  ScratchDir dir;
  // f64 source values include ones just above a 16-bit tie: rounding through float first would
  // land exactly on the tie and round to even, the wrong way.
  std::vector<double> v64 = rand_normal(61, 2.0, 21);
  v64.push_back(1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30));   // bf16: must round up to 0x3F81
  v64.push_back(1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -30));  // f16: must round up to 0x3C01
  v64.push_back(-3.0 - std::ldexp(1.0, -7) - std::ldexp(1.0, -33));
  const int64_t n = int64_t(v64.size());
  HostTensor src64 = random_tensor("src64", DType::f64, {n}, 1);
  std::memcpy(src64.bytes.data(), v64.data(), v64.size() * 8);
  HostTensor src32 = random_tensor("src32", DType::f32, {8, 9}, 22);
  HostTensor srcbf = random_tensor("srcbf", DType::bf16, {3, 17}, 23);
  for (size_t i = 0; i < 51; ++i) {  // keep the bf16 source finite so the f32 comparison is meaningful
    uint16_t b;
    std::memcpy(&b, srcbf.bytes.data() + 2 * i, 2);
    b &= 0xBFFF;
    std::memcpy(srcbf.bytes.data() + 2 * i, &b, 2);
  }
  const std::string path = dir.file("conv.safetensors");
  write_safetensors(path, {{"src64", src64.t}, {"src32", src32.t}, {"srcbf", srcbf.t}});
  SafetensorsFile f = SafetensorsFile::open(path);

  Buffer to_bf(Device::cpu, DType::bf16, {n}), to_f16(Device::cpu, DType::f16, {n}), to_f32(Device::cpu, DType::f32, {n});
  read_tensor_into(f, "src64", to_bf);
  read_tensor_into(f, "src64", to_f16);
  read_tensor_into(f, "src64", to_f32);
  for (int64_t i = 0; i < n; ++i) {
    const double d = v64[size_t(i)];
    EXPECT_EQ(to_bf.t().ptr<bf16>()[i].bits, nearest16(d, float_to_bf16(float(d)).bits, bf16_value)) << i << " " << d;
    EXPECT_EQ(to_f16.t().ptr<f16>()[i].bits, nearest16(d, float_to_f16(float(d)).bits, f16_value)) << i << " " << d;
    EXPECT_EQ(to_f32.t().ptr<float>()[i], float(d)) << i;
  }
  EXPECT_EQ(to_bf.t().ptr<bf16>()[n - 3].bits, 0x3F81);
  EXPECT_EQ(to_f16.t().ptr<f16>()[n - 2].bits, 0x3C01);

  const float* s32 = reinterpret_cast<const float*>(src32.bytes.data());
  Buffer d64(Device::cpu, DType::f64, {8, 9}), dbf(Device::cpu, DType::bf16, {8, 9});
  read_tensor_into(f, "src32", d64);
  read_tensor_into(f, "src32", dbf);
  for (int i = 0; i < 72; ++i) {
    EXPECT_EQ(d64.t().ptr<double>()[i], double(s32[i]));
    EXPECT_EQ(dbf.t().ptr<bf16>()[i].bits, float_to_bf16(s32[i]).bits);
  }
  Buffer f32_from_bf(Device::cpu, DType::f32, {3, 17});
  read_tensor_into(f, "srcbf", f32_from_bf);
  for (int i = 0; i < 51; ++i) {
    bf16 b;
    std::memcpy(&b, srcbf.bytes.data() + 2 * i, 2);
    EXPECT_EQ(f32_from_bf.t().ptr<float>()[i], bf16_to_float(b));
  }

  Buffer wrong_shape(Device::cpu, DType::f32, {9, 8}), ints(Device::cpu, DType::i32, {8, 9});
  EXPECT_THROW(read_tensor_into(f, "src32", wrong_shape), Error);
  EXPECT_THROW(read_tensor_into(f, "src32", ints), Error);
  EXPECT_THROW(read_tensor_into(f, "nope", d64), Error);
}

TEST(Safetensors, ExpectTensorsListsEveryProblemAtOnce) {
  ScratchDir dir;
  std::vector<HostTensor> hs = {random_tensor("a", DType::f32, {2, 3}, 31), random_tensor("b", DType::f32, {4}, 32),
                                random_tensor("c", DType::f32, {5}, 33)};
  const std::string path = dir.file("expect.safetensors");
  write_safetensors(path, named(hs));
  SafetensorsFile f = SafetensorsFile::open(path);

  EXPECT_NO_THROW(expect_tensors(f, {{"a", {2, 3}}, {"b", {4}}, {"c", {5}}}, false));
  EXPECT_NO_THROW(expect_tensors(f, {{"a", {2, 3}}}, true));
  const std::vector<ExpectedTensor> want = {{"a", {2, 3}}, {"b", {5}}, {"d", {1}}, {"e", {2, 2}}};
  try {
    expect_tensors(f, want, false);
    ADD_FAILURE() << "mismatch accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    expect_contains(msg, path);
    expect_contains(msg, "2 missing (d [1]; e [2,2])");
    expect_contains(msg, "1 with the wrong shape (b is [4], expected [5])");
    expect_contains(msg, "1 unexpected (c [5])");
  }
  try {
    expect_tensors(f, want, true);
    ADD_FAILURE() << "mismatch accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("unexpected"), std::string::npos) << e.what();
  }
  try {
    expect_tensors(f, {{"model.x", {1}}}, true);
    ADD_FAILURE() << "missing tensor accepted";
  } catch (const Error& e) {
    expect_contains(e.what(), "None of the expected names is present");
  }
}

TEST(Safetensors, RefusesEachClassOfMalformedFile) {
  const std::string ok_entry = R"("t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})";
  auto file = [](const std::string& header, size_t data_bytes = 16) {
    return assemble_safetensors(header, filler(data_bytes));
  };
  // Sanity: the base file loads, so each refusal below is due to its one change.
  EXPECT_NO_THROW(SafetensorsFile::from_bytes(file("{" + ok_entry + "}"), "ok.safetensors"));

  expect_refused({1, 2, 3, 4, 5}, {"fewer than the 8-byte header length"});
  expect_refused({}, {"the file has 0 bytes"});
  {
    auto b = file("{" + ok_entry + "}");
    b[0] = 0xff;
    b[1] = 0x0f;  // header length 4095 + ... > file
    expect_refused(b, {"bytes 0-7", "runs past the end of the file"});
    std::vector<uint8_t> huge = b;
    const uint64_t n = 200'000'000;
    for (int i = 0; i < 8; ++i) huge[size_t(i)] = uint8_t(n >> (8 * i));
    expect_refused(huge, {"header length 200000000 is absurd"});
  }
  expect_refused(file("[1,2,3]"), {"byte 8", "does not start with '{'"});
  expect_refused(file(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})"), {"not valid JSON"});
  expect_refused(file(R"({"t":{"dtype":"F32",)" "\x01\xff"), {"not valid JSON", "header byte"});
  expect_refused(file(R"({"t":5})"), {"tensor 't'", "entry is a JSON number"});
  expect_refused(file(R"({"t":{"dtype":"F32"}})"), {"tensor 't'", "entry lacks shape, data_offsets"});
  expect_refused(file(R"({"t":{"dtype":7,"shape":[2,2],"data_offsets":[0,16]}})"), {"dtype is a JSON number"});
  expect_refused(file(R"({"t":{"dtype":"F128","shape":[2,2],"data_offsets":[0,16]}})"),
                 {"unknown dtype 'F128'", "BF16", "F32"});
  expect_refused(file(R"({"t":{"dtype":"F32","shape":"2x2","data_offsets":[0,16]}})"), {"shape is a JSON string"});
  expect_refused(file(R"({"t":{"dtype":"F32","shape":[2,-2],"data_offsets":[0,16]}})"),
                 {"shape[1] is a negative integer"});
  expect_refused(file(R"({"t":{"dtype":"F32","shape":[2.0,2],"data_offsets":[0,16]}})"),
                 {"shape[0] is a non-integer number"});
  expect_refused(file(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,16]}})"),
                 {"more elements than 64 bits can count"});
  expect_refused(file(R"({"t":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,16]}})"),
                 {"needs more bytes than 64 bits can count"});
  expect_refused(file(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[16]}})"), {"expected [begin, end]"});
  expect_refused(file(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,-16]}})"), {"expected [begin, end]"});
  expect_refused(file(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})"), {"begin > end"});
  expect_refused(file(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[4,20]}})"),
                 {"tensor 't'", "data_offsets end 20 is beyond the data section (16 bytes"});
  expect_refused(file(R"({"t":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}})"),
                 {"holds 16 bytes but shape [2,3] of F32 needs 24"});
  expect_refused(file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"U8","shape":[8],"data_offsets":[8,16]}})"),
                 {"tensor 'b'", "overlap tensor 'a'"});
  expect_refused(file(R"({"__metadata__":["pt"],)" + ok_entry + "}"), {"__metadata__", "expected an object of strings"});
  expect_refused(file(R"({"__metadata__":{"format":1},)" + ok_entry + "}"), {"__metadata__['format']", "must be strings"});
  expect_refused(file("{" + ok_entry + "," + ok_entry + "}"), {"key 't' appears twice"});
}

TEST(Safetensors, RefusesPathsThatAreNotFiles) {
  ScratchDir dir;
  try {
    SafetensorsFile::open(dir.file("absent.safetensors"));
    ADD_FAILURE() << "missing file opened";
  } catch (const Error& e) {
    expect_contains(e.what(), "absent.safetensors");
    expect_contains(e.what(), "No such file");
  }
  try {
    SafetensorsFile::open(dir.path());
    ADD_FAILURE() << "directory opened";
  } catch (const Error& e) {
    expect_contains(e.what(), "not a regular file");
  }
}

TEST(Safetensors, EmptyTensorsNeverOverlapAndEmptyFileIsValid) {
  SafetensorsFile f = SafetensorsFile::from_bytes(assemble_safetensors("{}      ", {}), "empty.safetensors");
  EXPECT_TRUE(f.names().empty());
  // Zero-byte tensors sitting inside another tensor's range, or at the very end, are fine.
  const std::string h =
      R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"z":{"dtype":"F32","shape":[0,3],"data_offsets":[8,8]},)"
      R"("end":{"dtype":"BF16","shape":[0],"data_offsets":[16,16]}})";
  SafetensorsFile g = SafetensorsFile::from_bytes(assemble_safetensors(h, filler(16)), "zero.safetensors");
  EXPECT_EQ(g.names(), (std::vector<std::string>{"a", "z", "end"}));
  EXPECT_EQ(g.info("z").numel(), 0);
}

// The temporary-then-rename protocol: a failed write leaves the previous file untouched and no
// temporary behind. RLIMIT_FSIZE makes write() fail part-way, as a full disk would.
TEST(Safetensors, FailedWriteLeavesPreviousFileIntact) {
  ScratchDir dir;
  const std::string path = dir.file("model.safetensors");
  std::vector<HostTensor> small = {random_tensor("w", DType::f32, {3}, 41)};
  write_safetensors(path, named(small));
  const auto before = read_bytes(path);

  std::vector<HostTensor> big = {random_tensor("w", DType::f32, {64, 1024}, 42)};
  struct rlimit old_limit {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit low = old_limit;
  low.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &low), 0);
  bool threw = false;
  std::string msg;
  try {
    write_safetensors(path, named(big));
  } catch (const Error& e) {
    threw = true;
    msg = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_TRUE(threw);
  expect_contains(msg, "File too large");
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"model.safetensors"});

  // And a successful write replaces it.
  write_safetensors(path, named(big));
  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(std::memcmp(f.raw("w"), big[0].bytes.data(), 64 * 1024 * 4), 0);
}

TEST(Safetensors, WriterRejectsBadInput) {
  ScratchDir dir;
  HostTensor a = random_tensor("a", DType::f32, {3}, 51);
  EXPECT_THROW(write_safetensors(dir.file("x.safetensors"), {{"a", a.t}, {"a", a.t}}), Error);
  EXPECT_THROW(write_safetensors(dir.file("x.safetensors"), {{"__metadata__", a.t}}), Error);
  EXPECT_THROW(write_safetensors(dir.file("x.safetensors"), {{"", a.t}}), Error);
  EXPECT_THROW(write_safetensors(dir.file("no/such/dir/x.safetensors"), {{"a", a.t}}), Error);
  EXPECT_TRUE(dir.entries().empty());
}

}  // namespace attnlab::test
