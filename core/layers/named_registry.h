#pragma once
// A registry of factories by name (attention variants, output heads), safe to use from static
// initialisers and threads. The built-in entries come from a function that fills the map on first
// use: attnlab_core is a static library, so a static initialiser in an entry's own file would be
// dropped by the linker, while this explicit list cannot be.
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/error.h"

namespace attnlab {

template <class Factory>
class NamedRegistry {
 public:
  using Map = std::map<std::string, Factory>;
  NamedRegistry(const char* what, void (*builtins)(Map&)) : what_(what) { builtins(map_); }

  // Throws when the name is taken or the entry is empty.
  void add(const std::string& name, Factory factory) {
    std::lock_guard<std::mutex> lock(mutex_);
    CHECK(!name.empty() && factory, what_, " registration needs a name and a factory");
    CHECK(!map_.count(name), what_, " '", name, "' is registered twice");
    map_[name] = std::move(factory);
  }
  // Sorted names.
  std::vector<std::string> names() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::string> v;
    for (const auto& [name, f] : map_) v.push_back(name);
    return v;
  }
  std::string joined_names() const {
    std::string s;
    for (const auto& n : names()) s += (s.empty() ? "" : ", ") + n;
    return s;
  }
  // The factory, or an empty one when `name` is not registered.
  Factory find(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = map_.find(name);
    return it == map_.end() ? Factory() : it->second;
  }

 private:
  const char* what_;
  mutable std::mutex mutex_;
  Map map_;
};

}  // namespace attnlab
