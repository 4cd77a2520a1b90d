#pragma once
// A layer's name and the NVTX range labels built from it once, at construction, so the step loop
// does no string work: "model.layers.3.self_attn forward" / "... backward".
#include <string>

namespace attnlab {

struct LayerName {
  std::string name;
  std::string forward;
  std::string backward;

  LayerName() = default;
  explicit LayerName(const std::string& n) : name(n), forward(n + " forward"), backward(n + " backward") {}
};

}  // namespace attnlab
