//! Ollama's request shapes, as its clients send them. Unknown fields are ignored, as Ollama
//! ignores them; known fields are type-checked, and a wrong type names its field.

use serde::Deserialize;
use serde_json::Value;

use super::options::Options;

/// A tool call in a message: Ollama sends the arguments as an object, not as JSON text.
#[derive(Debug, Clone, Deserialize)]
pub struct ToolCall {
    pub function: ToolCallFunction,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ToolCallFunction {
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub images: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The tool a `tool` message answers. (`thinking`, an earlier reply's reasoning that
    /// clients send back, is not part of the prompt.)
    #[serde(default)]
    pub tool_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    #[serde(default)]
    pub messages: Vec<Message>,
    /// The same shape as OpenAI's tools (checked when mapped onto an OpenAI chat request).
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub format: Option<Value>,
    #[serde(default)]
    pub options: Option<Options>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub keep_alive: Option<Value>,
    #[serde(default)]
    pub think: Option<Value>,
    #[serde(default)]
    pub logprobs: Option<bool>,
    #[serde(default)]
    pub top_logprobs: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GenerateRequest {
    pub model: String,
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub suffix: Option<String>,
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub context: Option<Vec<i64>>,
    #[serde(default)]
    pub raw: Option<bool>,
    #[serde(default)]
    pub images: Option<Vec<Value>>,
    #[serde(default)]
    pub format: Option<Value>,
    #[serde(default)]
    pub options: Option<Options>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub keep_alive: Option<Value>,
    #[serde(default)]
    pub think: Option<Value>,
    #[serde(default)]
    pub logprobs: Option<bool>,
    #[serde(default)]
    pub top_logprobs: Option<u64>,
}

/// `input` of `/api/embed`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum EmbedInput {
    One(String),
    Many(Vec<String>),
}

/// `truncate`, `options` and `keep_alive` are accepted and change nothing: Hearth never
/// truncates (embed.rs says why), has no options for embeddings, and keeps its models loaded.
#[derive(Debug, Clone, Deserialize)]
pub struct EmbedRequest {
    pub model: String,
    pub input: EmbedInput,
    #[serde(default)]
    pub dimensions: Option<u64>,
}

/// The legacy `/api/embeddings`: one `prompt`, one `embedding`.
#[derive(Debug, Clone, Deserialize)]
pub struct EmbeddingsRequest {
    pub model: String,
    #[serde(default)]
    pub prompt: String,
}

/// `/api/show` and `/api/pull` name the model as `model`, older clients as `name`. (`insecure`
/// and `verbose` change nothing here: Hearth pulls from its pinned catalog only, and shows
/// everything it knows.)
#[derive(Debug, Clone, Deserialize)]
pub struct ModelRef {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub stream: Option<bool>,
}

impl ModelRef {
    pub fn model(&self) -> Result<&str, crate::error::ApiError> {
        self.model
            .as_deref()
            .or(self.name.as_deref())
            .filter(|m| !m.is_empty())
            .ok_or_else(|| crate::error::ApiError::invalid("model", "`model` is required"))
    }
}
