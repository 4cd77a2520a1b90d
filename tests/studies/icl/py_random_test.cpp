// CPython's random module re-implemented: every list is compared with one CPython 3.11 made
// (fixtures/py_random_cases.json; fixtures/make_py_random_cases.py says how).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "studies/icl/py_random.h"

namespace attnlab::test {
namespace {
using icl::PyRandom;
using nlohmann::json;

const json& cases() {
  static const json j = [] {
    const std::string path = std::string(ATTNLAB_SOURCE_DIR) + "/tests/studies/icl/fixtures/py_random_cases.json";
    std::ifstream f(path);
    EXPECT_TRUE(f.good()) << "missing fixture " << path;
    return json::parse(f);
  }();
  return j;
}

// Seeds in the fixture are JSON ints; 2**63 + 11 only fits unsigned.
PyRandom seeded(const json& seed) {
  PyRandom r;
  if (seed.is_number_unsigned()) r.seed_unsigned(seed.get<uint64_t>());
  else r.seed(seed.get<int64_t>());
  return r;
}

TEST(PyRandom, FixtureRecordsHowItWasMade) {
  EXPECT_NE(cases()["made_by"].get<std::string>().find("make_py_random_cases.py"), std::string::npos);
  EXPECT_EQ(cases()["python"].get<std::string>().rfind("3.11", 0), 0u);
}

TEST(PyRandom, SampleMatchesCPythonForBothAlgorithms) {
  std::set<std::string> algorithms;
  size_t checked = 0;
  for (const json& c : cases()["sample"]) {
    const int64_t n = c["n"].get<int64_t>(), k = c["k"].get<int64_t>();
    const std::string algorithm = c["algorithm"];
    algorithms.insert(algorithm);
    EXPECT_EQ(icl::py_sample_uses_pool(n, k), algorithm == "pool") << "n=" << n << " k=" << k;
    PyRandom r = seeded(c["seed"]);
    const std::vector<int64_t> got = r.sample(n, k);
    EXPECT_EQ(got, c["result"].get<std::vector<int64_t>>()) << "seed=" << c["seed"] << " n=" << n << " k=" << k;
    ++checked;
  }
  EXPECT_EQ(algorithms, (std::set<std::string>{"pool", "set"}));
  EXPECT_GE(checked, 100u);
}

TEST(PyRandom, DemonstrationIndicesAreTheSampleOfTheSeed) {
  for (const json& c : cases()["sample"]) {
    if (c["seed"].is_number_unsigned() && c["seed"].get<uint64_t>() > uint64_t(INT64_MAX)) continue;
    if (c["n"] != 67349 || c["k"] != 32) continue;
    EXPECT_EQ(icl::demonstration_indices(67349, 32, c["seed"].get<int64_t>()), c["result"].get<std::vector<int64_t>>());
  }
  try {
    icl::demonstration_indices(10, 11, 0);
    ADD_FAILURE() << "k > n must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lower --k"), std::string::npos) << e.what();
  }
}

TEST(PyRandom, GetrandbitsMatchesCPython) {
  for (const json& c : cases()["getrandbits"]) {
    PyRandom r = seeded(c["seed"]);
    const auto widths = c["widths"].get<std::vector<int>>();
    const auto values = c["values"].get<std::vector<uint64_t>>();
    ASSERT_EQ(widths.size(), values.size());
    for (size_t i = 0; i < widths.size(); ++i)
      EXPECT_EQ(r.getrandbits(widths[i]), values[i]) << "seed=" << c["seed"] << " draw " << i << " k=" << widths[i];
  }
}

TEST(PyRandom, RandbelowMatchesCPython) {
  for (const json& c : cases()["randbelow"]) {
    PyRandom r = seeded(c["seed"]);
    const auto bounds = c["bounds"].get<std::vector<uint64_t>>();
    const auto values = c["values"].get<std::vector<uint64_t>>();
    for (size_t i = 0; i < bounds.size(); ++i) {
      EXPECT_EQ(r.randbelow(bounds[i]), values[i]) << "seed=" << c["seed"] << " n=" << bounds[i];
      EXPECT_LT(values[i], bounds[i]);
    }
  }
}

TEST(PyRandom, RandomAndGaussMatchCPython) {
  for (const char* which : {"random", "gauss"}) {
    for (const json& c : cases()[which]) {
      PyRandom r = seeded(c["seed"]);
      for (const json& v : c["values"]) {
        const double want = std::strtod(v.get<std::string>().c_str(), nullptr);
        const double got = std::string(which) == "random" ? r.random() : r.gauss();
        // random() is exact integer arithmetic; gauss goes through libm's log/cos/sin.
        if (std::string(which) == "random") EXPECT_EQ(got, want) << "seed=" << c["seed"];
        else EXPECT_NEAR(got, want, 4e-16 * std::max(1.0, std::abs(want))) << "seed=" << c["seed"];
      }
    }
  }
}

TEST(PyRandom, ReseedingRestartsTheStreamAndClearsTheCachedGauss) {
  PyRandom a(42);
  const double g1 = a.gauss();
  a.gauss();  // the cached second value
  a.gauss();
  a.seed(42);
  EXPECT_EQ(a.gauss(), g1);
  PyRandom b(-42), c(42);
  EXPECT_EQ(b.next_u32(), c.next_u32());  // |seed|, as CPython
  PyRandom d(0), e;
  e.seed_words({0});
  EXPECT_EQ(d.next_u32(), e.next_u32());
}

}  // namespace
}  // namespace attnlab::test
