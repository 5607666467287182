//! Anthropic's request shapes for `/v1/messages` and `/v1/messages/count_tokens`, as the
//! official clients send them.
//!
//! Unknown fields are accepted and ignored: hints about caching, speed, billing and placement
//! (`cache_control`, `service_tier`, `speed`, `inference_geo`, `workspace_id`, ...) that do not
//! change the answer; fields that would change the answer and that Hearth cannot
//! honour (`thinking`, `mcp_servers`, `container`) are read so they can be refused by name.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
pub struct MessagesRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub system: Option<System>,
    /// Required by `/v1/messages` (checked there, so that count_tokens can share this type).
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub top_k: Option<usize>,
    /// `user_id` only tags the request for abuse tracking at Anthropic: read to check its
    /// type, with nothing to do here.
    #[serde(default)]
    #[allow(dead_code)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub output_config: Option<OutputConfig>,
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub thinking: Option<Thinking>,
    #[serde(default)]
    pub mcp_servers: Option<Vec<Value>>,
    #[serde(default)]
    pub container: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[allow(dead_code)]
pub struct Metadata {
    #[serde(default)]
    pub user_id: Option<String>,
}

/// `output_config`: structured output (`format`) and `effort`.
#[derive(Debug, Clone, Deserialize)]
pub struct OutputConfig {
    #[serde(default)]
    pub effort: Option<String>,
    #[serde(default)]
    pub format: Option<OutputFormat>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OutputFormat {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub schema: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Thinking {
    #[serde(rename = "type")]
    pub kind: String,
}

/// `system`: a string or a list of text blocks.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum System {
    Text(String),
    Blocks(Vec<Block>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: Content,
}

/// Message content: a string or a list of content blocks.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Blocks(Vec<Block>),
}

/// One content block. Every kind's fields are optional here so that a block of a kind Hearth
/// does not read (`image`, `document`, ...) parses, and is then refused by its `type`.
#[derive(Debug, Clone, Deserialize)]
pub struct Block {
    #[serde(rename = "type")]
    pub kind: String,
    /// `text`
    #[serde(default)]
    pub text: Option<String>,
    /// `tool_use`
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub input: Option<Value>,
    /// `tool_result`
    #[serde(default)]
    pub tool_use_id: Option<String>,
    #[serde(default)]
    pub content: Option<ToolResultContent>,
    #[serde(default)]
    pub is_error: Option<bool>,
}

/// A tool result's `content`: a string or a list of blocks (text only here).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ToolResultContent {
    Text(String),
    Blocks(Vec<Block>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Tool {
    /// Absent or "custom" for a client tool; Anthropic's server tools carry a versioned type.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub input_schema: Option<Value>,
}

/// `tool_choice`: `{"type": "auto" | "any" | "none"}` or `{"type": "tool", "name": ...}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ToolChoice {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub disable_parallel_tool_use: Option<bool>,
}
