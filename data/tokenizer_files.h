#pragma once
// Tokenizer files that travel with a model folder, so `generate` and `forward` need no --tokenizer:
// run checkpoints and `attnlab init` folders carry the tokenizer they were made with.
#include <string>
#include <vector>

namespace attnlab::data {

// Writes the tokenizer `name_or_path` (gpt2, qwen2.5, qwen3 from the asset cache, or a tokenizer
// folder/file) into `folder` as HF files that Tokenizer::load(folder) and transformers both read:
// vocab.json + merges.txt (GPT-2) or tokenizer.json (Qwen; Qwen2.5 without Qwen3's later added
// tokens), plus tokenizer_config.json recording attnlab's chat family when known
// ("attnlab_chat_family"; transformers ignores the key). Returns the file names written.
std::vector<std::string> write_tokenizer_files(const std::string& name_or_path, const std::string& folder);
// Whether `folder` holds tokenizer files Tokenizer::load can read.
bool folder_has_tokenizer(const std::string& folder);

}  // namespace attnlab::data
