# @summary One kvmnet network file, validated by the agent before it
# replaces the old one.
#
# Declares the kvmnet class itself when it is not declared yet.
#
# @example As data: rendered to <config_dir>/nat-network.yaml
#   kvmnet::network { 'nat-network':
#     content => {
#       'mode'   => 'nat',
#       'bridge' => { 'name' => 'virbr-nat' },
#       'ip'     => [{ 'address' => '192.168.10.1/24' }],
#     },
#   }
#
# @example As a file of the module's user (TOML or YAML text)
#   kvmnet::network { 'nat-network':
#     content => file('profile/kvmnet/nat-network.toml'),
#   }
#
# @param content
#   The network as a Hash (one network, named by the title), or the whole
#   text of a file in $format.
# @param format
#   The file's format when content is text; a Hash is always written as YAML.
define kvmnet::network (
  Variant[Hash, String[1]] $content,
  Enum['toml', 'yaml'] $format = 'toml',
) {
  include kvmnet

  if $content =~ Hash {
    $extension = 'yaml'
    # JSON is YAML, and its quoting leaves no value to be read as another
    # type (a MAC as a number, `no` as false).
    $text = "# Managed by Puppet (kvmnet::network).\n${to_json_pretty({ 'networks' => { $title => $content } })}\n"
  } else {
    $extension = $format
    $text = $content
  }

  $path = "${kvmnet::config_dir}/${title}.${extension}"
  file { $path:
    ensure       => file,
    mode         => '0644',
    content      => $text,
    validate_cmd => "${kvmnet::binary} validate --format ${extension} %",
  }
  if $kvmnet::manage_service {
    File[$path] ~> Service['kvmnet-agent']
  }
}
