// The user-assigned managed identity every spindex job runs as.

@description('Azure region of the identity.')
param location string

@description('Name of the user-assigned managed identity.')
param name string

@description('Tags applied to the identity.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

@description('Resource id, for `identity` blocks and Key Vault secret references.')
output id string = identity.id

@description('Client (application) id: AZURE_CLIENT_ID of the jobs.')
output clientId string = identity.properties.clientId

@description('Object id of the service principal, for role assignments and Graph app-role grants.')
output principalId string = identity.properties.principalId

@description('Name of the identity.')
output name string = identity.name
